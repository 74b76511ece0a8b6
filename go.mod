module github.com/tenon-dev/tenon

go 1.26
