import test from 'ava';
import { VirtualAuthorizer } from '../../src/auth';
import { LIMITED_LIMITS, READER_MSG, READER_PERM, UPLOADS_OVERRIDE, WRITER_PERM, registerLoginSuite } from './login-suite';

// The reference authorizer: the htpasswd and PostgreSQL suites must behave exactly like this one.
registerLoginSuite(test, 'virtual', async (_t, homes) => {
  const a = new VirtualAuthorizer({ scrypt: { ln: 4, r: 8, p: 1 } });
  a.addUser('reader', 'reader-pw', homes.reader, { perm: READER_PERM, msgLogin: READER_MSG });
  a.overridePerm('reader', UPLOADS_OVERRIDE.path, UPLOADS_OVERRIDE.perm, UPLOADS_OVERRIDE.recursive);
  a.addUser('writer', 'writer-pw', homes.writer, { perm: WRITER_PERM });
  a.addUser('limited', 'limited-pw', homes.limited, { limits: LIMITED_LIMITS });
  return {
    authorizer: a,
    reader: { name: 'reader', password: 'reader-pw' },
    writer: { name: 'writer', password: 'writer-pw' },
    limited: { name: 'limited', password: 'limited-pw' },
  };
});
