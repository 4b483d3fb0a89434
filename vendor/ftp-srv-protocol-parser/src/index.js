'use strict';

const { CommandFramer } = require('./framer');
const { formatReply, sanitizeLine, quotePath } = require('./reply');

module.exports = { CommandFramer, formatReply, sanitizeLine, quotePath };
