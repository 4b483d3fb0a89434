-- ftpdlib: tables read by PostgresAuthorizer (src/auth/postgres.ts). PostgreSQL 12 or later.
--
-- Load with:  psql -v ON_ERROR_STOP=1 -d <database> -f conf/ftpdlib-schema.sql
-- Safe to run twice (IF NOT EXISTS). The authorizer only reads; give its role SELECT alone:
--   GRANT SELECT ON users, perm_overrides TO ftpd;
--
-- Add a user (the hash from ftpdlib's hashPassword(), or a bcrypt hash):
--   INSERT INTO users (name, password_hash, home, perm)
--   VALUES ('alice', '$scrypt$ln=14,r=8,p=1$...$...', '/srv/ftp/alice', 'elradfmwMT');
--   INSERT INTO perm_overrides (user_name, directory, perm, recursive)
--   VALUES ('alice', '/incoming', 'elrw', true);
--   UPDATE users SET max_sessions = 3, quota_bytes = 1073741824 WHERE name = 'alice';
--
-- The authorizer caches a row read for a successful login (cacheTtl, 5 s by default): a change
-- here applies to a user's next login after that, and to the sessions that login shares with.

CREATE TABLE IF NOT EXISTS users (
    -- The FTP login name: not empty, no control characters, at most 255 characters.
    name          text PRIMARY KEY
                  CHECK (name <> '' AND length(name) <= 255 AND name !~ '[[:cntrl:]]'),
    -- '$scrypt$ln=..,r=..,p=..$<salt>$<key>' (hashPassword), or bcrypt '$2y$' / '$2a$' / '$2b$'.
    -- Plain text cannot be stored.
    password_hash text NOT NULL
                  CHECK (password_hash LIKE '$scrypt$%' OR password_hash ~ '^\$2[aby]\$[0-9]{2}\$'),
    -- Absolute path of the user's root on the server.
    home          text NOT NULL CHECK (home LIKE '/%'),
    -- Permission letters over elradfmwMT (pyftpdlib's meaning); '' allows nothing.
    perm          text NOT NULL DEFAULT 'elr' CHECK (perm ~ '^[elradfmwMT]*$'),
    -- NULL gives the library's default messages.
    msg_login     text,
    msg_quit      text,
    -- false refuses logins (open sessions end on their own).
    enabled       boolean NOT NULL DEFAULT true,
    -- Per-user limits; NULL or 0 is no limit. Logged-in sessions at once (one more gets 530),
    -- upload and download bytes per second (shared by the user's transfers in that direction),
    -- and the total size and number of files under home (an upload past them gets 552).
    max_sessions  integer CHECK (max_sessions >= 0),
    read_limit    bigint  CHECK (read_limit >= 0),
    write_limit   bigint  CHECK (write_limit >= 0),
    quota_bytes   bigint  CHECK (quota_bytes >= 0),
    quota_files   integer CHECK (quota_files >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- A users table made before the limit columns existed gets them here (no-ops otherwise).
ALTER TABLE users ADD COLUMN IF NOT EXISTS max_sessions integer CHECK (max_sessions >= 0);
ALTER TABLE users ADD COLUMN IF NOT EXISTS read_limit   bigint  CHECK (read_limit >= 0);
ALTER TABLE users ADD COLUMN IF NOT EXISTS write_limit  bigint  CHECK (write_limit >= 0);
ALTER TABLE users ADD COLUMN IF NOT EXISTS quota_bytes  bigint  CHECK (quota_bytes >= 0);
ALTER TABLE users ADD COLUMN IF NOT EXISTS quota_files  integer CHECK (quota_files >= 0);

CREATE TABLE IF NOT EXISTS perm_overrides (
    user_name  text NOT NULL REFERENCES users (name) ON UPDATE CASCADE ON DELETE CASCADE,
    -- An FTP path inside the user's root: absolute, no trailing slash except the root itself.
    directory  text NOT NULL CHECK (directory LIKE '/%' AND (directory = '/' OR directory NOT LIKE '%/')),
    perm       text NOT NULL CHECK (perm ~ '^[elradfmwMT]*$'),
    -- true: the directory and everything below it; false: the directory and its direct entries.
    recursive  boolean NOT NULL DEFAULT false,
    -- One override per directory; the key's first column also serves the lookup by user.
    PRIMARY KEY (user_name, directory)
);

-- Keep updated_at honest for whoever audits changes.
CREATE OR REPLACE FUNCTION ftpdlib_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$fn$;

DROP TRIGGER IF EXISTS users_touch_updated_at ON users;
CREATE TRIGGER users_touch_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION ftpdlib_touch_updated_at();
