-- Every new message sets its conversation's `updated_at`. With that column in an index, no
-- such update can be a heap-only (HOT) update, so each message added an entry to every index
-- of `conversations`. The queries these indexes serve find few rows by their other columns
-- (a visitor's conversations; a site's conversations in one state) and sort those few.
DROP INDEX conversations_visitor;
CREATE INDEX conversations_visitor ON conversations (visitor_id);
DROP INDEX conversations_site_state;
CREATE INDEX conversations_site_state ON conversations (site_id, state);
-- Room on each page for the new version of an updated row, so the update stays on its page.
ALTER TABLE conversations SET (fillfactor = 80);
