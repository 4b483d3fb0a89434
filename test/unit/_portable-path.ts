// Imported first by tests of LocalFileSystem's portable path: the native openat2 fast path off
// for this test process (read once, when src/native loads).
process.env.FTPDLIB_NO_OPENAT2 = '1';
