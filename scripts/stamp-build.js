#!/usr/bin/env node
'use strict';
// Run by `npm run build` after tsc succeeded: dist/.built's time says when the build last matched
// src/. tsc builds incrementally and leaves a file whose output did not change with its old time,
// so the newest file of dist/ cannot say that (bench/run.js reads this stamp to pick the build).
const fs = require('fs');
const path = require('path');

fs.writeFileSync(path.join(__dirname, '..', 'dist', '.built'), new Date().toISOString() + '\n');
