// Imported first by tests of LocalFileSystem's portable path: the native openat2 fast path and the
// batched lstat of listings off for this test process (read once, when src/native loads).
process.env.FTPDLIB_NO_OPENAT2 = '1';
process.env.FTPDLIB_NO_LSTAT_MANY = '1';
