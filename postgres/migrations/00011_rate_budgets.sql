-- +goose Up
-- Rate-limit budgets shared by the nodes of an app (tenon.BudgetStore): one
-- row per product pool, its state as JSON (tenon.RateBudget), and the nodes
-- that merged into it lately, so each node knows how many share the pool.
CREATE TABLE rate_budgets (
    key        text COLLATE "C" NOT NULL PRIMARY KEY,
    state      jsonb NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE rate_budget_nodes (
    key     text COLLATE "C" NOT NULL REFERENCES rate_budgets (key) ON DELETE CASCADE,
    node    text NOT NULL,
    seen_at timestamptz NOT NULL,
    PRIMARY KEY (key, node)
);

-- +goose Down
DROP TABLE rate_budget_nodes;
DROP TABLE rate_budgets;
