// Package deploy holds the files that run tenon outside a developer's
// machine: the systemd unit, firewall rules, container and Kubernetes
// manifests, Prometheus alerts. It has no code; its tests check that the
// files agree with each other and that every document they name exists.
package deploy
