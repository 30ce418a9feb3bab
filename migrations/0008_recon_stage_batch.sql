-- A staged row's batch comes from the transaction that stages it (set_config
-- 'custos.recon_batch_id', local to the transaction): COPY then sends the parser's
-- lines as they are, with no batch id written in front of each of a million lines.
-- Staging without the setting fails (unrecognized configuration parameter).
ALTER TABLE recon_channel_rows ALTER COLUMN batch_id SET DEFAULT current_setting('custos.recon_batch_id');
