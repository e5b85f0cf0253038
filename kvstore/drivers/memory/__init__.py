"""The memory driver: a pure-Python Redis 7.0 that lives in this process.

:class:`MemoryDriver` implements the :class:`~kvstore.drivers.base.Driver` contract with the
same replies and the same error messages as a Redis 7.0 server, for this command surface:

* keys: DEL, EXISTS, TYPE, EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (NX, XX, GT, LT), TTL,
  PTTL, PERSIST, SCAN (MATCH, COUNT, TYPE), DBSIZE, FLUSHDB, PING;
* strings: GET, SET (NX, XX, GET, EX, PX, EXAT, PXAT, KEEPTTL), MGET, MSET, INCR, INCRBY,
  DECR, DECRBY;
* hashes: HSET, HSETNX, HGET, HMGET, HGETALL, HKEYS, HVALS, HDEL, HEXISTS, HLEN, HINCRBY;
* sets: SADD, SREM, SMEMBERS, SISMEMBER, SCARD;
* sorted sets: ZADD (NX, XX, GT, LT, CH, INCR), ZINCRBY, ZREM, ZSCORE, ZMSCORE, ZCARD,
  ZCOUNT, ZRANK, ZREVRANK, ZRANGE (BYSCORE, BYLEX, REV, LIMIT, WITHSCORES), ZREVRANGE,
  ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX, ZREVRANGEBYLEX, ZREMRANGEBYSCORE,
  ZREMRANGEBYRANK;
* streams: XADD (NOMKSTREAM, MAXLEN, MINID, LIMIT), XRANGE, XREVRANGE, XLEN, XDEL, XTRIM.

Any other command gets Redis's "unknown command" error. Known differences from Redis:

* SCAN visits keys in another (equally arbitrary) order and never returns a key twice;
* ``~`` trims streams exactly (see ``_commands_streams``);
* BYLEX on a sorted set whose scores differ follows Redis's small-set (listpack) walk at
  any size; Redis documents that case as unspecified;
* Redis's suffix on script errors (``script: <sha>, on @user_script:<line>.``) is left out.

Modules, from the bottom up: ``_errors`` (Redis's messages), ``_parse`` (Redis's number
and range parsing), ``_glob``, ``_sortedlist``, ``_zset``, ``_stream``, ``_keyspace``,
``_commands_*`` (one per data type), ``_table`` (name -> handler), ``_journal`` (the
persistence hook), ``_rewrite`` and ``_aof`` (the append-only file) and ``_driver``.
"""

from kvstore.drivers.memory._driver import MemoryDriver

__all__ = ["MemoryDriver"]
