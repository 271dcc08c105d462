-- Who asked to cancel a job (an actor: "the CLI", "the dashboard", "the dispatcher", or a person),
-- kept from the request until the job ends so its reason names them, not the agent that stopped it.
ALTER TABLE jobs ADD COLUMN cancelled_by TEXT;
