-- Learned knowledge is tied to the conversation it came from: deleting a visitor (and so their
-- conversations) unlinks it, and `kb_entry_id` names the knowledge-base entry a teach or an
-- approval put the visitor's question into, so that the deletion can take it out again.
UPDATE learned_entries SET conversation_id = NULL
    WHERE conversation_id IS NOT NULL
      AND conversation_id NOT IN (SELECT id FROM conversations);
ALTER TABLE learned_entries
    ADD CONSTRAINT learned_entries_conversation_fk FOREIGN KEY (conversation_id)
        REFERENCES conversations(id) ON DELETE SET NULL;
ALTER TABLE learned_entries ADD COLUMN kb_entry_id TEXT;
CREATE INDEX learned_entries_conversation ON learned_entries (conversation_id);
