-- Reconciliation, part 1: statement files as received (对账单原件). Every file fetched
-- from a channel or bank (HTTP, FTP, SFTP) or handed in by an operator is stored on
-- disk under its sha256 before anything parses it; this table says what it is.
-- Storing the same bytes twice for the same channel, day and file type is one row.

CREATE TABLE recon_files (
  id            bigserial PRIMARY KEY,
  channel       text COLLATE "C" NOT NULL,
  source_kind   text NOT NULL CHECK (source_kind IN ('http', 'ftp', 'sftp', 'local')),
  -- The merchant account at the channel (商户号) or the bank account (银行账号).
  account       text COLLATE "C" NOT NULL DEFAULT '',
  bill_date     date NOT NULL,
  file_type     text COLLATE "C" NOT NULL,
  original_name text NOT NULL,
  sha256        char(64) COLLATE "C" NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  size_bytes    int8 NOT NULL CHECK (size_bytes >= 0),
  stored_path   text NOT NULL,
  fetched_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (sha256, channel, bill_date, file_type)
);
CREATE INDEX recon_files_day ON recon_files (channel, bill_date, file_type);
