package hostclient_test

import (
	"testing"

	"github.com/tenon-dev/tenon/hostclient"
	"github.com/tenon-dev/tenon/storetest"
)

func TestMemoryBudgets(t *testing.T) {
	storetest.RunBudgetStore(t, hostclient.NewMemoryBudgets())
}
