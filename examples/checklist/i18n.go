package checklist

import "strings"

// messages are the strings of the panel, in one language. Those the
// browser code needs travel to it as JSON in a data attribute (see JS).
type messages struct {
	Lang            string
	Title           string
	Empty           string
	InputLabel      string
	Placeholder     string
	Add             string
	Delete          string
	Progress        string // "{done}" and "{total}" are filled in
	JiraUnavailable string
	IssueNotFound   string
	ErrInvalid      string
	ErrTooMany      string
	ErrForbidden    string
	ErrSession      string
	ErrGeneric      string
}

// JS is the subset the browser code uses, with stable JSON names.
func (m *messages) JS() map[string]string {
	return map[string]string{
		"delete":       m.Delete,
		"empty":        m.Empty,
		"progress":     m.Progress,
		"errInvalid":   m.ErrInvalid,
		"errTooMany":   m.ErrTooMany,
		"errForbidden": m.ErrForbidden,
		"errSession":   m.ErrSession,
		"errGeneric":   m.ErrGeneric,
	}
}

var english = messages{
	Lang:            "en",
	Title:           "Checklist",
	Empty:           "No items yet.",
	InputLabel:      "New item",
	Placeholder:     "What needs doing?",
	Add:             "Add",
	Delete:          "Delete item",
	Progress:        "{done} of {total} done",
	JiraUnavailable: "Jira could not be reached, so the issue summary is missing. The checklist still works.",
	IssueNotFound:   "Jira did not return this issue; it may have been moved or deleted.",
	ErrInvalid:      "Enter between 1 and 500 characters on one line.",
	ErrTooMany:      "This checklist is full: it holds at most 100 items.",
	ErrForbidden:    "You cannot change this checklist from here.",
	ErrSession:      "Your session has expired. Reload the page and try again.",
	ErrGeneric:      "The change could not be saved. Try again in a moment.",
}

var german = messages{
	Lang:            "de",
	Title:           "Checkliste",
	Empty:           "Noch keine Einträge.",
	InputLabel:      "Neuer Eintrag",
	Placeholder:     "Was ist zu tun?",
	Add:             "Hinzufügen",
	Delete:          "Eintrag löschen",
	Progress:        "{done} von {total} erledigt",
	JiraUnavailable: "Jira ist nicht erreichbar, daher fehlt die Zusammenfassung des Vorgangs. Die Checkliste funktioniert trotzdem.",
	IssueNotFound:   "Jira hat diesen Vorgang nicht geliefert; vielleicht wurde er verschoben oder gelöscht.",
	ErrInvalid:      "Bitte 1 bis 500 Zeichen in einer Zeile eingeben.",
	ErrTooMany:      "Diese Checkliste ist voll: Sie fasst höchstens 100 Einträge.",
	ErrForbidden:    "Diese Checkliste kann von hier aus nicht geändert werden.",
	ErrSession:      "Die Sitzung ist abgelaufen. Bitte die Seite neu laden und erneut versuchen.",
	ErrGeneric:      "Die Änderung konnte nicht gespeichert werden. Bitte gleich noch einmal versuchen.",
}

// Language returns the panel language for a Connect loc value such as
// "de-DE" or "de_AT": "de" for German, "en" for everything else, since
// English is the one language every user of a Jira site can be assumed to
// read when theirs is missing.
func Language(loc string) string {
	lang, _, _ := strings.Cut(strings.ReplaceAll(loc, "_", "-"), "-")
	if strings.EqualFold(lang, "de") {
		return "de"
	}
	return "en"
}

// messagesFor returns a copy of the strings for loc, so no request can
// change what another one shows.
func messagesFor(loc string) *messages {
	m := english
	if Language(loc) == "de" {
		m = german
	}
	return &m
}
