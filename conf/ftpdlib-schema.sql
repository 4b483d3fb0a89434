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
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

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
