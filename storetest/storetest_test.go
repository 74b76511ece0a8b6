package storetest_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/storetest"
)

func TestClock(t *testing.T) {
	c := storetest.NewClock(storetest.Start)
	if !c.Now().Equal(storetest.Start) {
		t.Errorf("Now = %v, want %v", c.Now(), storetest.Start)
	}
	c.Advance(90 * time.Second)
	if got := c.Now().Sub(storetest.Start); got != 90*time.Second {
		t.Errorf("after Advance: %v later, want 90s", got)
	}
	if storetest.Start.Truncate(time.Microsecond) != storetest.Start {
		t.Error("Start has sub-microsecond precision, which stores may drop")
	}
}

func TestNewInstallation(t *testing.T) {
	in := storetest.NewInstallation(`tenant "quoted"`)
	var body struct {
		ClientKey    string `json:"clientKey"`
		SharedSecret string `json:"sharedSecret"`
	}
	if err := json.Unmarshal(in.Payload, &body); err != nil {
		t.Fatal(err)
	}
	if body.ClientKey != in.ClientKey || body.SharedSecret != in.SharedSecret {
		t.Errorf("payload %s does not match the fields", in.Payload)
	}
}
