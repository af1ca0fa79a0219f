-- Every new message sets its conversation's `updated_at`, so an index holding that column is
-- rewritten on every message (two index pages written per message besides the row). The
-- queries these indexes serve find few rows by their other columns (a visitor's
-- conversations; a site's conversations in one state) and sort those few.
DROP INDEX conversations_visitor;
CREATE INDEX conversations_visitor ON conversations (visitor_id);
DROP INDEX conversations_site_state;
CREATE INDEX conversations_site_state ON conversations (site_id, state);
