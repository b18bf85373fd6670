// SPDX-License-Identifier: GPL-2.0
/* SQLite key store (see store.h for the state machine and the crash-safety argument). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store.h"

enum {
	Q_ADD, Q_LOCK_SEL, Q_LOCK_UPD, Q_GET, Q_VERIFY, Q_DISCARD, Q_UNLOCK, Q_UNLOCK_ALL, Q_DEFER, Q_EXPIRE_ONE,
	Q_EXPIRE, Q_STALE, Q_TAKE_SEL, Q_DELIVER, Q_RESV_UPD, Q_RESV_SEL, Q_RESV_COMMIT,
	Q_RESV_RELEASE, Q_CONSUME, Q_STATS, Q_LIVE, Q_LIVE_SPLIT, Q_SURPLUS_SEL, Q_CNT_GET, Q_CNT_ADD, Q_TAKE_PAR_SEL, Q_TAKE_ID_SEL,
	Q_USE_PAR_SEL, Q_USE_ID_SEL, Q_USE_UPD, Q_X_ADD, Q_X_SEL_SRC, Q_X_SEL_ANY, Q_X_SEL_ID,
	Q_X_DELIVER, Q_X_CONSUME, Q_X_STATS, Q_X_LIST,
	Q_M_ADD, Q_M_GET, Q_M_DEL, Q_M_SEL_ABOVE, Q_M_DEL_ABOVE, Q_M_COUNT, Q_ADD_KEY, Q_KEY_ROWID,
	Q_S_ADD, Q_S_GET, Q_S_DEL, Q_S_EXPIRE, Q_S_PENDING,
	__Q_LAST
};

/*
 * Statements on blocks whose ORDER BY id LIMIT would otherwise walk the primary key from a link's
 * first row (the planner, without statistics, prefers that to a sort) name their index
 * (INDEXED BY blocks_take); the unit test reads every plan back (store_plans). A block's key
 * bytes are in block_keys (schema 5), read by a CROSS JOIN, which keeps blocks the outer loop.
 */
#define BK_JOIN "CROSS JOIN block_keys AS k ON k.link=b.link AND k.id=b.id"
#define BK_TAKE "blocks AS b INDEXED BY blocks_take " BK_JOIN
/*
 * A block's key: the last len bytes of its key row. Verification spends the first 64 bytes
 * on the tag: it zeroes them in place (incremental blob I/O: only the page that holds them
 * is written) and shortens len, instead of rewriting the row without them, which wrote the
 * whole key again plus secure_delete's zeroes over the old copy.
 */
#define KEY "substr(k.key,length(k.key)-b.len+1)"
static const char *const sql_text[__Q_LAST] = {
	[Q_ADD] = "INSERT OR IGNORE INTO blocks(link,id,state,created,len) VALUES(?1,?2,0,?3,?4)",
	[Q_ADD_KEY] = "INSERT INTO block_keys(link,id,key) VALUES(?1,?2,?3)",
	[Q_KEY_ROWID] = "SELECT rowid FROM block_keys WHERE link=?1 AND id=?2",
	[Q_LOCK_SEL] = "SELECT id FROM blocks WHERE link=?1 AND state=0 AND created<=?2 "
		       "AND (lock_until IS NULL OR lock_until<=?4) ORDER BY created,id LIMIT ?3",
	[Q_LOCK_UPD] = "UPDATE blocks SET state=1,txid=?3,lock_until=?4 "
		       "WHERE link=?1 AND id=?2 AND state=0",
	[Q_GET] = "SELECT b.state," KEY ",b.len,b.tag FROM blocks AS b LEFT JOIN block_keys AS k "
		  "ON k.link=b.link AND k.id=b.id WHERE b.link=?1 AND b.id=?2",
	[Q_VERIFY] = "UPDATE blocks SET state=2,tag=?3,len=len-?4,txid=NULL,"
		     "lock_until=NULL WHERE link=?1 AND id=?2 AND state IN (0,1) AND len>?4",
	[Q_DISCARD] = "UPDATE blocks SET state=6,tag=?3,txid=NULL,lock_until=NULL "
		      "WHERE link=?1 AND id=?2 AND state IN (0,1,2)",
	[Q_UNLOCK] = "UPDATE blocks SET state=0,txid=NULL,lock_until=NULL "
		     "WHERE link=?1 AND state=1 AND txid=?2",
	[Q_UNLOCK_ALL] = "UPDATE blocks SET state=0,txid=NULL,lock_until=NULL "
			 "WHERE link=?1 AND state=1",
	[Q_DEFER] = "UPDATE blocks SET state=0,txid=NULL,lock_until=?3 "
		    "WHERE link=?1 AND id=?2 AND state=1",
	[Q_EXPIRE_ONE] = "UPDATE blocks SET state=6,txid=NULL,lock_until=NULL "
			 "WHERE link=?1 AND id=?2 AND state=1 AND created<?3",
	[Q_EXPIRE] = "UPDATE blocks SET state=0,txid=NULL,lock_until=NULL "
		     "WHERE state=1 AND lock_until<?1",
	[Q_STALE] = "UPDATE blocks SET state=6 WHERE link=?1 AND state=0 AND created<?2",
	[Q_TAKE_SEL] = "SELECT b.id," KEY ",b.len FROM " BK_TAKE " WHERE b.link=?1 AND b.state=2 "
			"ORDER BY b.id LIMIT ?2",
	[Q_DELIVER] = "UPDATE blocks SET state=4 WHERE link=?1 AND id=?2 AND state=2",
	[Q_RESV_UPD] = "UPDATE blocks SET state=3,txid=?2 WHERE link=?1 AND id IN (SELECT id FROM blocks "
		       "WHERE link=?1 AND state=2 ORDER BY id LIMIT ?3)",
	[Q_RESV_SEL] = "SELECT b.id," KEY ",b.len FROM blocks AS b " BK_JOIN
		       " WHERE b.state=3 AND b.txid=?1 ORDER BY b.id",
	[Q_RESV_COMMIT] = "UPDATE blocks SET state=4,txid=NULL WHERE state=3 AND txid=?1",
	[Q_RESV_RELEASE] = "UPDATE blocks SET state=2,txid=NULL WHERE state=3 AND txid=?1",
	[Q_CONSUME] = "UPDATE blocks SET state=5 WHERE link=?1 AND id=?2 AND state=4",
	[Q_STATS] = "SELECT b.state,count(*),coalesce(sum(b.len*(k.key IS NOT NULL)),0) FROM blocks AS b "
		    "LEFT JOIN block_keys AS k ON k.link=b.link AND k.id=b.id WHERE b.link=?1 "
		    "GROUP BY b.state",
	[Q_LIVE] = "SELECT coalesce(sum(len),0) FROM blocks WHERE link=?1 AND state IN (0,1,2)",
	[Q_LIVE_SPLIT] = "SELECT coalesce(sum(CASE WHEN state<2 THEN len END),0),"
			 "coalesce(sum(CASE WHEN state=2 AND (id&1)=0 THEN len END),0),"
			 "coalesce(sum(CASE WHEN state=2 AND (id&1)=1 THEN len END),0) "
			 "FROM blocks WHERE link=?1 AND state IN (0,1,2)",
	[Q_SURPLUS_SEL] = "SELECT id,len FROM blocks INDEXED BY blocks_take "
			  "WHERE link=?1 AND state=2 AND (id&1)=?2 ORDER BY id LIMIT ?3",
	[Q_CNT_GET] = "SELECT verified,mismatched,orphaned FROM counters WHERE link=?1",
	[Q_CNT_ADD] = "INSERT INTO counters(link,verified,mismatched,orphaned) VALUES(?1,?2,?3,?4) "
		      "ON CONFLICT(link) DO UPDATE SET verified=verified+?2,"
		      "mismatched=mismatched+?3,orphaned=orphaned+?4",
	[Q_TAKE_PAR_SEL] = "SELECT b.id," KEY ",b.len FROM " BK_TAKE
			   " WHERE b.link=?1 AND b.state=2 AND (b.id&1)=?3 ORDER BY b.id LIMIT ?2",
	[Q_TAKE_ID_SEL] = "SELECT b.id," KEY ",b.len FROM " BK_TAKE
			  " WHERE b.link=?1 AND b.state=2 AND b.id=?3 LIMIT ?2",
	[Q_USE_PAR_SEL] = "SELECT b.id," KEY ",b.len FROM " BK_TAKE
			  " WHERE b.link=?1 AND b.state=2 AND (b.id&1)=?3 AND b.len>=?2 "
			  "ORDER BY b.id LIMIT 1",
	[Q_USE_ID_SEL] = "SELECT b.id," KEY ",b.len FROM " BK_TAKE
			 " WHERE b.link=?1 AND b.state=2 AND b.id=?3",
	[Q_USE_UPD] = "UPDATE blocks SET state=5 WHERE link=?1 AND id=?2 AND state=2",
	[Q_X_ADD] = "INSERT OR IGNORE INTO xfer(peer,src,txid,state,created,len,key,fp) "
		    "VALUES(?1,?2,?3,2,?4,?5,?6,?7)",
	[Q_X_SEL_SRC] = "SELECT txid,key,len,src FROM xfer WHERE peer=?1 AND state=2 AND src=?2 "
			"ORDER BY created,txid LIMIT 1",
	[Q_X_SEL_ANY] = "SELECT txid,key,len,src FROM xfer WHERE peer=?1 AND state=2 "
			"ORDER BY created,txid LIMIT 1",
	[Q_X_SEL_ID] = "SELECT txid,key,len,src FROM xfer WHERE peer=?1 AND state=2 AND src=?2 "
		       "AND txid=?3",
	[Q_X_DELIVER] = "UPDATE xfer SET state=4 WHERE peer=?1 AND src=?2 AND txid=?3 AND state=2",
	[Q_X_CONSUME] = "UPDATE xfer SET state=5,key=NULL WHERE peer=?1 AND src=?2 AND txid=?3 "
			"AND state=4",
	[Q_X_STATS] = "SELECT state,src=?2,count(*),coalesce(sum(length(key)),0) FROM xfer "
		      "WHERE peer=?1 GROUP BY state,src=?2",
	[Q_X_LIST] = "SELECT peer,src,txid,state,coalesce(length(key),0),created,fp FROM xfer "
		     "ORDER BY peer,created,txid",
	[Q_M_ADD] = "INSERT OR REPLACE INTO dist_map(pair,dir,ring_id,ref) VALUES(?1,?2,?3,?4)",
	[Q_M_GET] = "SELECT ref FROM dist_map WHERE pair=?1 AND dir=?2 AND ring_id=?3",
	[Q_M_DEL] = "DELETE FROM dist_map WHERE pair=?1 AND dir=?2 AND ring_id=?3",
	[Q_M_SEL_ABOVE] = "SELECT ring_id,ref FROM dist_map WHERE pair=?1 AND dir=?2 AND ring_id>?3 "
			  "ORDER BY ring_id",
	[Q_M_DEL_ABOVE] = "DELETE FROM dist_map WHERE pair=?1 AND dir=?2 AND ring_id>?3",
	[Q_M_COUNT] = "SELECT count(*) FROM dist_map WHERE pair=?1 AND dir=?2",
	[Q_S_ADD] = "INSERT OR IGNORE INTO sae_keys(key_id,master,slave,created,key) "
		    "VALUES(?1,?2,?3,?4,?5)",
	[Q_S_GET] = "SELECT master,slave,key FROM sae_keys WHERE key_id=?1",
	[Q_S_DEL] = "DELETE FROM sae_keys WHERE key_id=?1",
	[Q_S_EXPIRE] = "DELETE FROM sae_keys WHERE created<?1",
	[Q_S_PENDING] = "SELECT master,slave,count(*),sum(length(key)) FROM sae_keys "
			"GROUP BY master,slave ORDER BY master,slave",
};

static const char schema_v1[] =
	"CREATE TABLE blocks("
	" link TEXT NOT NULL,"
	" id INTEGER NOT NULL,"		/* the QKD block id, a u64 stored as its int64 bits */
	" state INTEGER NOT NULL,"
	" created INTEGER NOT NULL,"	/* ms since the epoch */
	" len INTEGER NOT NULL,"
	" key BLOB,"			/* NULL once consumed or discarded */
	" tag BLOB,"
	" txid INTEGER,"		/* caching round (locked) or reservation (reserved) */
	" lock_until INTEGER,"
	" PRIMARY KEY(link, id)) WITHOUT ROWID;"
	/* len in the index: the live-bytes check each second is an index-only scan */
	"CREATE INDEX blocks_state ON blocks(link, state, created, len);"
	"CREATE TABLE counters(link TEXT PRIMARY KEY, verified INTEGER NOT NULL,"
	" mismatched INTEGER NOT NULL, orphaned INTEGER NOT NULL);"
	"PRAGMA user_version=1;";

/* v1 -> v2: committed PPETP transfer keys. */
static const char schema_v2[] =
	"CREATE TABLE xfer("
	" peer TEXT NOT NULL,"		/* the remote node the key is shared with */
	" src TEXT NOT NULL,"		/* the transfer's source: us or peer */
	" txid INTEGER NOT NULL,"	/* the transfer's id, a u64 stored as its int64 bits */
	" state INTEGER NOT NULL,"	/* 2 verified, 4 delivered, 5 consumed */
	" created INTEGER NOT NULL,"
	" len INTEGER NOT NULL,"
	" key BLOB,"			/* NULL once consumed */
	" fp BLOB NOT NULL,"		/* fingerprint, not secret */
	" PRIMARY KEY(peer, src, txid)) WITHOUT ROWID;"
	"CREATE INDEX xfer_state ON xfer(peer, state, src, created);"
	"PRAGMA user_version=2;";

/* v2 -> v3: key distribution's map of pushed ring blocks to store keys. */
static const char schema_v3[] =
	"CREATE TABLE dist_map("
	" pair TEXT NOT NULL,"		/* the other node of the pair */
	" dir INTEGER NOT NULL,"	/* 0 our encrypt ring, 1 our decrypt ring */
	" ring_id INTEGER NOT NULL,"	/* the kernel ring block id, u64 as int64 bits */
	" ref INTEGER NOT NULL,"	/* link block id or transfer txid */
	" PRIMARY KEY(pair, dir, ring_id)) WITHOUT ROWID;"
	"PRAGMA user_version=3;";

/*
 * v3 -> v4: an index for every filter, so that no statement walks a link's rows (each row
 * holds up to 64 KiB of key on overflow pages, and consumed rows stay): the columns a
 * statement filters on come from an index and only matching rows are read. Partial
 * indexes: txid and lock_until are NULL on all but a round's or a reservation's rows.
 */
static const char schema_v4[] =
	"CREATE INDEX IF NOT EXISTS blocks_take ON blocks(link, state, id);"
	"CREATE INDEX IF NOT EXISTS blocks_txid ON blocks(state, txid) WHERE txid IS NOT NULL;"
	"CREATE INDEX IF NOT EXISTS blocks_lock ON blocks(state, lock_until) WHERE lock_until IS NOT NULL;"
	"CREATE INDEX IF NOT EXISTS xfer_take ON xfer(peer, state, created, txid);"
	"PRAGMA user_version=4;";

/*
 * v4 -> v5: key bytes in a table of their own. A block changes state four to six times (fresh,
 * locked, verified, reserved or delivered, consumed), and each change rewrote the whole row,
 * its key on overflow pages included: unlocking a caching round rewrote up to 2 MiB of key
 * (~110 ms for 64 blocks of 32 KiB). Now a state change writes the small blocks row only; the
 * key row is written when the block arrives (never rewritten whole: KEY, above) and deleted
 * (secure_delete overwrites it) by the trigger as the block becomes consumed or discarded.
 * A rowid table: rows of up to 64 KiB are what rowid tables are for.
 */
static const char schema_v5[] =
	"CREATE TABLE block_keys(link TEXT NOT NULL, id INTEGER NOT NULL, key BLOB NOT NULL,"
	" UNIQUE(link, id));"
	"INSERT INTO block_keys(link,id,key) SELECT link,id,key FROM blocks WHERE key IS NOT NULL;"
	"ALTER TABLE blocks DROP COLUMN key;"
	"CREATE TRIGGER blocks_wipe AFTER UPDATE OF state ON blocks WHEN NEW.state IN (5,6) BEGIN"
	" DELETE FROM block_keys WHERE link=NEW.link AND id=NEW.id; END;"
	"PRAGMA user_version=5;";

/*
 * v5 -> v6: keys kmsd's northbound KME holds for a slave SAE until it fetches them with
 * dec_keys (nbkme.c): each is deleted (secure_delete overwrites it) as it is handed out or
 * expires. Small rows (a key is at most 8 KiB).
 */
static const char schema_v6[] =
	"CREATE TABLE sae_keys(key_id TEXT PRIMARY KEY, master TEXT NOT NULL,"
	" slave TEXT NOT NULL, created INTEGER NOT NULL, key BLOB NOT NULL);"
	"CREATE INDEX sae_keys_created ON sae_keys(created);"
	"PRAGMA user_version=6;";

/* Statements that read every row of a link or peer by design (operator views). */
static const unsigned char whole_scan[__Q_LAST] = {
	[Q_STATS] = 1, [Q_X_STATS] = 1, [Q_X_LIST] = 1, [Q_S_PENDING] = 1,
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *q[__Q_LAST];
	int in_tx;			/* the caller's store_begin */
	int tx_in_group;		/* ... as a savepoint of the open group */
	/* group commit (store_group_enable) */
	int group_on, group_open;
	uint64_t group_ops;		/* operations in the open group */
	void (*group_opened)(void *arg);
	void (*group_done)(void *arg, int ok, uint64_t ops);
	void *group_arg;
};

const char *block_state_name(int state)
{
	static const char *const names[] = { "fresh", "locked", "verified", "reserved",
					     "delivered", "consumed", "discarded" };

	return state >= 0 && state < __BS_LAST ? names[state] : "?";
}

const char *store_errmsg(struct store *st)
{
	return sqlite3_errmsg(st->db);
}

static sqlite3_stmt *Q(struct store *st, int idx)
{
	if (!st->q[idx] && sqlite3_prepare_v3(st->db, sql_text[idx], -1, SQLITE_PREPARE_PERSISTENT,
					      &st->q[idx], NULL) != SQLITE_OK)
		return NULL;
	return st->q[idx];
}

static void done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

static int exec(struct store *st, const char *sql)
{
	return sqlite3_exec(st->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* Runs a statement that returns no rows; returns rows changed or -1. */
static int step_done(struct store *st, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	done(s);
	return rc == SQLITE_DONE ? sqlite3_changes(st->db) : -1;
}

/*
 * Group commit. Without it every single operation is a transaction of its own, committed
 * (one fsync) before it returns. With it, single operations outside store_begin join one
 * transaction that stays open until store_group_commit(); each is a savepoint in it, so
 * it is still all or nothing. Nothing that depends on such an operation may leave the
 * process before the group commits: the owner holds its messages until group_done says
 * so. A store_begin joins an open group (a savepoint too) and its store_commit commits the
 * group, so an explicit transaction is still durable when store_commit returns, as
 * without groups.
 */
void store_group_enable(struct store *st, void (*opened)(void *arg),
			void (*committed)(void *arg, int ok, uint64_t ops), void *arg)
{
	st->group_on = 1;
	st->group_opened = opened;
	st->group_done = committed;
	st->group_arg = arg;
}

int store_group_pending(const struct store *st)
{
	return st->group_open;
}

int store_group_commit(struct store *st)
{
	uint64_t ops = st->group_ops;
	int ok;

	if (!st->group_open)
		return 0;
	st->group_open = 0;
	st->group_ops = 0;
	ok = exec(st, "COMMIT") == 0;
	/* done() before the rollback: store_errmsg() still says why */
	if (st->group_done)
		st->group_done(st->group_arg, ok, ops);
	if (!ok)
		exec(st, "ROLLBACK");
	return ok ? 0 : -1;
}

/* Opens the group if none is open (the owner is told, to commit it at the end of the pass). */
static int open_group(struct store *st)
{
	if (st->group_open)
		return 0;
	if (exec(st, "BEGIN IMMEDIATE"))
		return -1;
	st->group_open = 1;
	if (st->group_opened)
		st->group_opened(st->group_arg);
	return 0;
}

/* Ends the savepoint "tx" of a batch in the group: kept, or undone if that fails. */
static int release_tx(struct store *st)
{
	if (exec(st, "RELEASE tx") == 0)
		return 0;
	exec(st, "ROLLBACK TO tx");
	exec(st, "RELEASE tx");
	return -1;
}

/* One single operation: its own transaction, or a savepoint in the open group. */
static int op_begin(struct store *st)
{
	if (!st->group_on)
		return exec(st, "BEGIN IMMEDIATE");
	if (open_group(st))
		return -1;
	if (exec(st, "SAVEPOINT op"))
		return -1;
	st->group_ops++;
	return 0;
}

static int op_end(struct store *st, int ok)
{
	if (!st->group_on) {
		if (ok && exec(st, "COMMIT") == 0)
			return 0;
		exec(st, "ROLLBACK");
		return ok ? -1 : 0;
	}
	if (ok && exec(st, "RELEASE op") == 0)
		return 0;
	exec(st, "ROLLBACK TO op");
	exec(st, "RELEASE op");
	return ok ? -1 : 0;
}

int store_begin(struct store *st)
{
	if (st->group_open) {
		/* joins the group; store_commit commits them together */
		if (exec(st, "SAVEPOINT tx"))
			return -1;
		st->tx_in_group = 1;
	} else if (exec(st, "BEGIN IMMEDIATE")) {
		return -1;
	}
	st->in_tx = 1;
	return 0;
}

int store_commit(struct store *st)
{
	st->in_tx = 0;
	if (st->tx_in_group) {
		st->tx_in_group = 0;
		return release_tx(st) ? -1 : store_group_commit(st);
	}
	if (exec(st, "COMMIT")) {
		exec(st, "ROLLBACK");
		return -1;
	}
	return 0;
}

int store_begin_grouped(struct store *st)
{
	if (!st->group_on)
		return store_begin(st);
	if (open_group(st) || exec(st, "SAVEPOINT tx"))
		return -1;
	st->group_ops++;
	st->tx_in_group = 1;
	st->in_tx = 1;
	return 0;
}

int store_release(struct store *st)
{
	if (!st->tx_in_group)
		return store_commit(st);
	st->in_tx = 0;
	st->tx_in_group = 0;
	return release_tx(st);
}

void store_rollback(struct store *st)
{
	st->in_tx = 0;
	if (st->tx_in_group) {
		st->tx_in_group = 0;
		exec(st, "ROLLBACK TO tx");
		exec(st, "RELEASE tx");
		return;
	}
	exec(st, "ROLLBACK");
}

/* Single operations run in a transaction (or group savepoint) of their own, unless the
 * caller opened one. */
#define AUTO_TX_BEGIN(st) int own_tx_ = !(st)->in_tx; if (own_tx_ && op_begin(st)) return -1
#define AUTO_TX_END(st, rc) do { if (own_tx_ && op_end(st, (rc) >= 0)) (rc) = -1; } while (0)

int store_plans(struct store *st,
		void (*fn)(const char *sql, const char *plan, int whole, void *arg), void *arg)
{
	char plan[1024], *sql;
	sqlite3_stmt *s;
	size_t n;

	for (int i = 0; i < __Q_LAST; i++) {
		sql = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sql_text[i]);
		if (!sql || sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
			sqlite3_free(sql);
			return -1;
		}
		sqlite3_free(sql);
		n = 0;
		plan[0] = 0;
		while (sqlite3_step(s) == SQLITE_ROW)
			n += (size_t)snprintf(plan + n, n < sizeof(plan) ? sizeof(plan) - n : 0,
					      "%s%s", n ? "; " : "", sqlite3_column_text(s, 3));
		sqlite3_finalize(s);
		fn(sql_text[i], plan, whole_scan[i], arg);
	}
	return __Q_LAST;
}

struct store *store_open(const char *path, char *err, size_t errlen)
{
	struct store *st = calloc(1, sizeof(*st));
	sqlite3_stmt *s;
	int ver = -1;

	if (!st) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, st->db ? sqlite3_errmsg(st->db) : "open");
		goto fail;
	}
	sqlite3_busy_timeout(st->db, 5000);
	/*
	 * WAL + synchronous=FULL: a committed transition survives power loss, which the
	 * at-most-once guarantee needs. secure_delete overwrites freed pages so wiped key
	 * bytes do not linger in the file.
	 */
	if (exec(st, "PRAGMA journal_mode=WAL") || exec(st, "PRAGMA synchronous=FULL") ||
	    exec(st, "PRAGMA secure_delete=ON") || exec(st, "PRAGMA foreign_keys=ON")) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(st->db));
		goto fail;
	}
	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			ver = sqlite3_column_int(s, 0);
		sqlite3_finalize(s);
	}
	if (ver >= 0 && ver < STORE_SCHEMA_VERSION) {
		if (exec(st, "BEGIN IMMEDIATE") || (ver < 1 && exec(st, schema_v1)) ||
		    (ver < 2 && exec(st, schema_v2)) || (ver < 3 && exec(st, schema_v3)) ||
		    (ver < 4 && exec(st, schema_v4)) || (ver < 5 && exec(st, schema_v5)) ||
		    (ver < 6 && exec(st, schema_v6)) ||
		    exec(st, "COMMIT")) {
			snprintf(err, errlen, "%s: %s schema: %s", path,
				 ver ? "upgrading the" : "creating the", sqlite3_errmsg(st->db));
			goto fail;
		}
	} else if (ver != STORE_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: unsupported store schema version: `%d'", path, ver);
		goto fail;
	}
	for (int i = 0; i < __Q_LAST; i++) {
		if (!Q(st, i)) {
			snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(st->db));
			goto fail;
		}
	}
	return st;
fail:
	store_close(st);
	return NULL;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	store_group_commit(st);
	for (int i = 0; i < __Q_LAST; i++)
		sqlite3_finalize(st->q[i]);
	sqlite3_close(st->db);
	free(st);
}

int store_recover(struct store *st)
{
	int rc = 0;

	AUTO_TX_BEGIN(st);
	if (exec(st, "UPDATE blocks SET state=0,txid=NULL,lock_until=NULL WHERE state=1") ||
	    exec(st, "UPDATE blocks SET state=2,txid=NULL WHERE state=3"))
		rc = -1;
	AUTO_TX_END(st, rc);
	return rc;
}

static int count_add(struct store *st, const char *link, int v, int m, int o)
{
	sqlite3_stmt *s = Q(st, Q_CNT_ADD);

	sqlite3_bind_text(s, 1, link, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, v);
	sqlite3_bind_int(s, 3, m);
	sqlite3_bind_int(s, 4, o);
	return step_done(st, s) < 0 ? -1 : 0;
}

int store_add_fresh(struct store *st, const char *link, uint64_t id, const uint8_t *raw,
		    size_t len, int64_t now_ms)
{
	sqlite3_stmt *s = Q(st, Q_ADD), *k = Q(st, Q_ADD_KEY);
	int rc;

	if (len == 0 || len > STORE_BLOCK_MAX)
		return -1;
	AUTO_TX_BEGIN(st);
	sqlite3_bind_text(s, 1, link, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (int64_t)id);
	sqlite3_bind_int64(s, 3, now_ms);
	sqlite3_bind_int(s, 4, (int)len);
	rc = step_done(st, s);
	/* The key only with a new block: an id seen before (even consumed) gets none. */
	if (rc == 1) {
		sqlite3_bind_text(k, 1, link, -1, SQLITE_STATIC);
		sqlite3_bind_int64(k, 2, (int64_t)id);
		sqlite3_bind_blob(k, 3, raw, (int)len, SQLITE_STATIC);
		rc = step_done(st, k) == 1 ? 0 : -1;
	} else if (rc == 0) {
		rc = 1;
	}
	AUTO_TX_END(st, rc);
	return rc;
}

int store_lock_fresh(struct store *st, const char *link, size_t max, uint64_t txid,
		     int64_t now_ms, int64_t min_age_ms, int64_t lock_until_ms, uint64_t *ids,
		     size_t *n)
{
	sqlite3_stmt *sel = Q(st, Q_LOCK_SEL), *upd = Q(st, Q_LOCK_UPD);
	int rc = 0;

	*n = 0;
	AUTO_TX_BEGIN(st);
	sqlite3_bind_text(sel, 1, link, -1, SQLITE_STATIC);
	sqlite3_bind_int64(sel, 2, now_ms - min_age_ms);
	sqlite3_bind_int64(sel, 3, (int64_t)max);
	sqlite3_bind_int64(sel, 4, now_ms);
	while (*n < max && (rc = sqlite3_step(sel)) == SQLITE_ROW)
		ids[(*n)++] = (uint64_t)sqlite3_column_int64(sel, 0);
	rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
	done(sel);
	for (size_t i = 0; rc == 0 && i < *n; i++) {
		sqlite3_bind_text(upd, 1, link, -1, SQLITE_STATIC);
		sqlite3_bind_int64(upd, 2, (int64_t)ids[i]);
		sqlite3_bind_int64(upd, 3, (int64_t)txid);
		sqlite3_bind_int64(upd, 4, lock_until_ms);
		if (step_done(st, upd) != 1)
			rc = -1;
	}
	AUTO_TX_END(st, rc);
	if (rc < 0)
		*n = 0;
	return rc;
}

int store_get(struct store *st, const char *link, uint64_t id, int *state, uint8_t *key,
	      size_t *len, uint8_t *tag, int *has_tag)
{
	sqlite3_stmt *s = Q(st, Q_GET);
	int rc;

	sqlite3_bind_text(s, 1, link, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (int64_t)id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const void *k = sqlite3_column_blob(s, 1);
		int kl = sqlite3_column_bytes(s, 1);
		int tl = sqlite3_column_bytes(s, 3);

		*state = sqlite3_column_int(s, 0);
		if (len)
			*len = k ? (size_t)kl : 0;
		if (key && k && kl <= STORE_BLOCK_MAX)
			memcpy(key, k, kl);
		if (has_tag)
			*has_tag = tl > 0;
		if (tag && tl > 0 && tl <= 32)
			memcpy(tag, sqlite3_column_blob(s, 3), tl);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? 1 : -1;
	}
	done(s);
	return rc;
}

/* Zeroes the first n bytes of a block's key row where they lie (keys wiped, DESIGN.md). */
static int wipe_prefix(struct store *st, const char *link, uint64_t id, size_t n)
{
	static const uint8_t zero[256];
	sqlite3_stmt *s = Q(st, Q_KEY_ROWID);
	sqlite3_blob *b = NULL;
	int64_t rowid = -1;
	int rc = -1;

	sqlite3_bind_text(s, 1, link, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (int64_t)id);
	if (sqlite3_step(s) == SQLITE_ROW)
		rowid = sqlite3_column_int64(s, 0);
	done(s);
	if (rowid < 0 || sqlite3_blob_open(st->db, "main", "block_keys", "key", rowid, 1,
					   &b) != SQLITE_OK)
		goto out;
	if ((size_t)sqlite3_blob_bytes(b) < n)
		goto out;
	for (size_t off = 0; off < n; off += sizeof(zero)) {
		size_t k = n - off < sizeof(zero) ? n - off : sizeof(zero);

		if (sqlite3_blob_write(b, zero, (int)k, (int)off) != SQLITE_OK)
			goto out;
	}
	rc = 0;
out:
	sqlite3_blob_close(b);
	return rc;
}

int store_verify(struct store *st, const char *link, uint64_t id, const uint8_t *tag,
		 size_t taglen, size_t strip)
{
	sqlite3_stmt *s = Q(st, Q_VERIFY);
	int rc;

	AUTO_TX_BEGIN(st);
	sqlite3_bind_text(s, 1, link, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (int64_t)id);
	sqlite3_bind_blob(s, 3, tag, (int)taglen, SQLITE_STATIC);
	sqlite3_bind_int(s, 4, (int)strip);
	/* len shrinks by the bytes the verification spent (KEY never reads them), zeroed */
	rc = step_done(st, s);
	if (rc == 1 && strip && wipe_prefix(st, link, id, strip))
		rc = -1;
	if (rc == 1)
		rc = count_add(st, link, 1, 0, 0);
	else if (rc == 0)
		rc = -1;
	AUTO_TX_END(st, rc);
	return rc;
}

int store_discard(struct store *st, const char *link, uint64_t id, enum discard_reason why,
		  const uint8_t *tag, size_t taglen)
{
	sqlite3_stmt *s = Q(st, Q_DISCARD);
	int rc;

	AUTO_TX_BEGIN(st);
	sqlite3_bind_text(s, 1, link, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (int64_t)id);
	if (tag)
		sqlite3_bind_blob(s, 3, tag, (int)taglen, SQLITE_STATIC);
	rc = step_done(st, s);
	if (rc == 1)
		rc = count_add(st, link, 0, why == DISCARD_MISMATCH, why == DISCARD_ORPHAN);
	else if (rc == 0)
		rc = -1;
	AUTO_TX_END(st, rc);
	return rc;
}

int store_unlock(struct store *st, const char *link, uint64_t txid)
{
	sqlite3_stmt *s = Q(st, txid ? Q_UNLOCK : Q_UNLOCK_ALL);
	int rc;

	AUTO_TX_BEGIN(st);
	sqlite3_bind_text(s, 1, link, -1, SQLITE_STATIC);
	if (txid)
		sqlite3_bind_int64(s, 2, (int64_t)txid);
	rc = step_done(st, s);
	AUTO_TX_END(st, rc);
	return rc;
}

int store_defer(struct store *st, const char *link, uint64_t id, int64_t not_before_ms,
		int64_t expire_before_ms)
{
	sqlite3_stmt *s = Q(st, Q_EXPIRE_ONE);
	int rc;

	AUTO_TX_BEGIN(st);
	sqlite3_bind_text(s, 1, link, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (int64_t)id);
	sqlite3_bind_int64(s, 3, expire_before_ms);
	rc = step_done(st, s);
	if (rc == 1) {
		rc = count_add(st, link, 0, 0, 1) ? -1 : 2;
	} else if (rc == 0) {
		s = Q(st, Q_DEFER);
		sqlite3_bind_text(s, 1, link, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, (int64_t)id);
		sqlite3_bind_int64(s, 3, not_before_ms);
		rc = step_done(st, s);
	}
	AUTO_TX_END(st, rc);
	return rc;
}

/* Statement q with one integer parameter, as a single operation: rows changed or -1. */
static int op_int64(struct store *st, int q, int64_t v)
{
	sqlite3_stmt *s = Q(st, q);
	int rc;

	AUTO_TX_BEGIN(st);
	sqlite3_bind_int64(s, 1, v);
	rc = step_done(st, s);
	AUTO_TX_END(st, rc);
	return rc;
}

int store_release_expired(struct store *st, int64_t now_ms)
{
	return op_int64(st, Q_EXPIRE, now_ms);
}

int store_purge_stale(struct store *st, const char *link, int64_t older_than_ms)
{
	sqlite3_stmt *s = Q(st, Q_STALE);
	int rc;

	AUTO_TX_BEGIN(st);
	sqlite3_bind_text(s, 1, link, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, older_than_ms);
	rc = step_done(st, s);
	if (rc > 0 && count_add(st, link, 0, 0, rc))
		rc = -1;
	AUTO_TX_END(st, rc);
	return rc;
}

static int read_blocks(sqlite3_stmt *s, struct store_block *out, size_t max, size_t *n,
		       size_t min_bytes)
{
	size_t got = 0;
	int rc;

	while (*n < max && (min_bytes == 0 || got < min_bytes) &&
	       (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const void *k = sqlite3_column_blob(s, 1);
		int kl = sqlite3_column_bytes(s, 1);

		if (!k || kl <= 0 || kl > STORE_BLOCK_MAX)
			return -1;
		out[*n].id = (uint64_t)sqlite3_column_int64(s, 0);
		out[*n].len = kl;
		memcpy(out[*n].key, k, kl);
		got += kl;
		(*n)++;
	}
	return 0;
}

static void wipe_blocks(struct store_block *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		explicit_bzero(out[i].key, out[i].len);
}

/*
 * caller_tx 0: in a transaction of its own, committed before the bytes are returned (and
 * refused inside a caller's transaction). caller_tx 1: only inside the caller's
 * transaction, which the caller commits before the bytes leave the process.
 */
static int take_q(struct store *st, int q, const char *link, int64_t arg, size_t min_bytes,
		  struct store_block *out, size_t max, size_t *n, int caller_tx)
{
	sqlite3_stmt *sel = Q(st, q), *upd = Q(st, Q_DELIVER);
	int rc;

	*n = 0;
	if (st->in_tx != caller_tx)
		return -1;
	AUTO_TX_BEGIN(st);
	sqlite3_bind_text(sel, 1, link, -1, SQLITE_STATIC);
	sqlite3_bind_int64(sel, 2, (int64_t)max);
	if (q != Q_TAKE_SEL)
		sqlite3_bind_int64(sel, 3, arg);
	rc = read_blocks(sel, out, max, n, min_bytes ? min_bytes : 1);
	done(sel);
	for (size_t i = 0; rc == 0 && i < *n; i++) {
		sqlite3_bind_text(upd, 1, link, -1, SQLITE_STATIC);
		sqlite3_bind_int64(upd, 2, (int64_t)out[i].id);
		if (step_done(st, upd) != 1)
			rc = -1;
	}
	AUTO_TX_END(st, rc);
	if (rc < 0) {
		wipe_blocks(out, *n);
		*n = 0;
	}
	return rc;
}

int store_take(struct store *st, const char *link, size_t min_bytes, struct store_block *out,
	       size_t max, size_t *n)
{
	return take_q(st, Q_TAKE_SEL, link, 0, min_bytes, out, max, n, 0);
}

int store_take_parity(struct store *st, const char *link, int parity, size_t min_bytes,
		      struct store_block *out, size_t max, size_t *n)
{
	return take_q(st, Q_TAKE_PAR_SEL, link, parity & 1, min_bytes, out, max, n, 0);
}

int store_take_parity_tx(struct store *st, const char *link, int parity, size_t min_bytes,
			 struct store_block *out, size_t max, size_t *n)
{
	return take_q(st, Q_TAKE_PAR_SEL, link, parity & 1, min_bytes, out, max, n, 1);
}

int store_take_id(struct store *st, const char *link, uint64_t id, struct store_block *out)
{
	size_t n = 0;

	if (take_q(st, Q_TAKE_ID_SEL, link, (int64_t)id, 0, out, 1, &n, 0) < 0)
		return -1;
	return n == 1 ? 0 : 1;
}

int store_take_id_tx(struct store *st, const char *link, uint64_t id, struct store_block *out)
{
	size_t n = 0;

	if (take_q(st, Q_TAKE_ID_SEL, link, (int64_t)id, 0, out, 1, &n, 1) < 0)
		return -1;
	return n == 1 ? 0 : 1;
}

int store_reserve(struct store *st, const char *link, uint64_t resv, size_t max,
		  struct store_block *out, size_t *n)
{
	sqlite3_stmt *upd = Q(st, Q_RESV_UPD), *sel = Q(st, Q_RESV_SEL);
	int rc;

	*n = 0;
	AUTO_TX_BEGIN(st);
	sqlite3_bind_text(upd, 1, link, -1, SQLITE_STATIC);
	sqlite3_bind_int64(upd, 2, (int64_t)resv);
	sqlite3_bind_int64(upd, 3, (int64_t)max);
	rc = step_done(st, upd) < 0 ? -1 : 0;
	if (rc == 0) {
		sqlite3_bind_int64(sel, 1, (int64_t)resv);
		rc = read_blocks(sel, out, max, n, 0);
		done(sel);
	}
	AUTO_TX_END(st, rc);
	if (rc < 0) {
		wipe_blocks(out, *n);
		*n = 0;
	}
	return rc;
}

static int resv_op(struct store *st, int q, uint64_t resv)
{
	sqlite3_stmt *s = Q(st, q);
	int rc;

	AUTO_TX_BEGIN(st);
	sqlite3_bind_int64(s, 1, (int64_t)resv);
	rc = step_done(st, s);
	AUTO_TX_END(st, rc);
	return rc;
}

int store_commit_reserved(struct store *st, uint64_t resv)
{
	return resv_op(st, Q_RESV_COMMIT, resv);
}

int store_release_reserved(struct store *st, uint64_t resv)
{
	return resv_op(st, Q_RESV_RELEASE, resv);
}

int store_consume(struct store *st, const char *link, uint64_t id)
{
	sqlite3_stmt *s = Q(st, Q_CONSUME);
	int rc;

	AUTO_TX_BEGIN(st);
	sqlite3_bind_text(s, 1, link, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (int64_t)id);
	rc = step_done(st, s);
	if (rc >= 0)
		rc = rc == 1 ? 0 : 1;
	AUTO_TX_END(st, rc);
	return rc;
}

/* Selects at most one block with sel (already bound) and moves it verified -> consumed. */
static int use_one(struct store *st, sqlite3_stmt *sel, const char *link,
		   struct store_block *out)
{
	sqlite3_stmt *upd = Q(st, Q_USE_UPD);
	size_t n = 0;
	int rc, own_tx_ = 1;

	/* not inside a caller's transaction: committed (or grouped) on its own */
	if (st->in_tx || op_begin(st)) {
		done(sel);
		return -1;
	}
	rc = read_blocks(sel, out, 1, &n, 1);
	done(sel);
	if (rc == 0 && n == 1) {
		sqlite3_bind_text(upd, 1, link, -1, SQLITE_STATIC);
		sqlite3_bind_int64(upd, 2, (int64_t)out->id);
		if (step_done(st, upd) != 1)
			rc = -1;
	}
	AUTO_TX_END(st, rc);
	if (rc < 0) {
		wipe_blocks(out, n);
		return -1;
	}
	return n == 1 ? 0 : 1;
}

int store_take_use(struct store *st, const char *link, int parity, size_t min_len,
		   struct store_block *out)
{
	sqlite3_stmt *sel = Q(st, Q_USE_PAR_SEL);

	sqlite3_bind_text(sel, 1, link, -1, SQLITE_STATIC);
	sqlite3_bind_int64(sel, 2, (int64_t)(min_len ? min_len : 1));
	sqlite3_bind_int64(sel, 3, parity & 1);
	return use_one(st, sel, link, out);
}

int store_take_use_id(struct store *st, const char *link, uint64_t id, struct store_block *out)
{
	sqlite3_stmt *sel = Q(st, Q_USE_ID_SEL);

	sqlite3_bind_text(sel, 1, link, -1, SQLITE_STATIC);
	sqlite3_bind_int64(sel, 3, (int64_t)id);
	return use_one(st, sel, link, out);
}

int store_xfer_add(struct store *st, const char *peer, const char *src, uint64_t txid,
		   const uint8_t *key, size_t len, const uint8_t fp[STORE_FP_LEN], int64_t now_ms)
{
	sqlite3_stmt *s = Q(st, Q_X_ADD);
	int rc;

	if (len == 0 || len > STORE_BLOCK_MAX)
		return -1;
	AUTO_TX_BEGIN(st);
	sqlite3_bind_text(s, 1, peer, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, src, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (int64_t)txid);
	sqlite3_bind_int64(s, 4, now_ms);
	sqlite3_bind_int(s, 5, (int)len);
	sqlite3_bind_blob(s, 6, key, (int)len, SQLITE_STATIC);
	sqlite3_bind_blob(s, 7, fp, STORE_FP_LEN, SQLITE_STATIC);
	rc = step_done(st, s);
	if (rc >= 0)
		rc = rc == 1 ? 0 : 1;
	AUTO_TX_END(st, rc);
	return rc;
}

static int xfer_take(struct store *st, const char *peer, const char *src, uint64_t txid,
		     struct store_block *out, int caller_tx)
{
	sqlite3_stmt *sel = Q(st, txid ? Q_X_SEL_ID : src ? Q_X_SEL_SRC : Q_X_SEL_ANY);
	sqlite3_stmt *upd = Q(st, Q_X_DELIVER);
	char from[64] = "";
	int rc = -1, found = 0;

	if (st->in_tx != caller_tx || (txid && !src))
		return -1;
	if (!caller_tx && store_begin(st))
		return -1;
	sqlite3_bind_text(sel, 1, peer, -1, SQLITE_STATIC);
	if (src)
		sqlite3_bind_text(sel, 2, src, -1, SQLITE_STATIC);
	if (txid)
		sqlite3_bind_int64(sel, 3, (int64_t)txid);
	switch (sqlite3_step(sel)) {
	case SQLITE_ROW: {
		const void *k = sqlite3_column_blob(sel, 1);
		int kl = sqlite3_column_bytes(sel, 1);
		const unsigned char *f = sqlite3_column_text(sel, 3);

		if (!k || kl <= 0 || kl > STORE_BLOCK_MAX || !f || strlen((const char *)f) >= sizeof(from))
			break;
		out->id = (uint64_t)sqlite3_column_int64(sel, 0);
		out->len = kl;
		memcpy(out->key, k, kl);
		snprintf(from, sizeof(from), "%s", (const char *)f);
		found = 1;
		rc = 0;
		break;
	}
	case SQLITE_DONE:
		rc = 0;
		break;
	}
	done(sel);
	if (rc == 0 && found) {
		sqlite3_bind_text(upd, 1, peer, -1, SQLITE_STATIC);
		sqlite3_bind_text(upd, 2, from, -1, SQLITE_STATIC);
		sqlite3_bind_int64(upd, 3, (int64_t)out->id);
		if (step_done(st, upd) != 1)
			rc = -1;
	}
	if (!caller_tx) {		/* else the caller commits or rolls back */
		if (rc < 0)
			store_rollback(st);
		else if (store_commit(st))
			rc = -1;
	}
	if (rc < 0) {
		if (found)
			explicit_bzero(out->key, out->len);
		return -1;
	}
	return found ? 0 : 1;
}

int store_xfer_take(struct store *st, const char *peer, const char *src, uint64_t txid,
		    struct store_block *out)
{
	return xfer_take(st, peer, src, txid, out, 0);
}

int store_xfer_take_tx(struct store *st, const char *peer, const char *src, uint64_t txid,
		       struct store_block *out)
{
	return xfer_take(st, peer, src, txid, out, 1);
}

int store_xfer_consume(struct store *st, const char *peer, const char *src, uint64_t txid)
{
	sqlite3_stmt *s = Q(st, Q_X_CONSUME);
	int rc;

	AUTO_TX_BEGIN(st);
	sqlite3_bind_text(s, 1, peer, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, src, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (int64_t)txid);
	rc = step_done(st, s);
	if (rc >= 0)
		rc = rc == 1 ? 0 : 1;
	AUTO_TX_END(st, rc);
	return rc;
}

int store_xfer_stats(struct store *st, const char *peer, const char *self,
		     struct store_xfer_stats *out)
{
	sqlite3_stmt *s = Q(st, Q_X_STATS);
	int rc;

	memset(out, 0, sizeof(*out));
	sqlite3_bind_text(s, 1, peer, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, self, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int state = sqlite3_column_int(s, 0), theirs = !sqlite3_column_int(s, 1);

		if (state >= 0 && state < __BS_LAST) {
			out->blocks[state][theirs] = sqlite3_column_int64(s, 2);
			out->bytes[state][theirs] = sqlite3_column_int64(s, 3);
		}
	}
	done(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

int store_xfer_list(struct store *st, void (*fn)(void *arg, const struct store_xfer_info *x),
		    void *arg)
{
	sqlite3_stmt *s = Q(st, Q_X_LIST);
	struct store_xfer_info x;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *peer = sqlite3_column_text(s, 0);
		const unsigned char *src = sqlite3_column_text(s, 1);
		const void *fp = sqlite3_column_blob(s, 6);

		memset(&x, 0, sizeof(x));
		snprintf(x.peer, sizeof(x.peer), "%s", peer ? (const char *)peer : "");
		snprintf(x.src, sizeof(x.src), "%s", src ? (const char *)src : "");
		x.txid = (uint64_t)sqlite3_column_int64(s, 2);
		x.state = sqlite3_column_int(s, 3);
		x.len = (uint32_t)sqlite3_column_int(s, 4);
		x.created_ms = sqlite3_column_int64(s, 5);
		if (fp && sqlite3_column_bytes(s, 6) == STORE_FP_LEN)
			memcpy(x.fp, fp, STORE_FP_LEN);
		fn(arg, &x);
	}
	done(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

int store_dist_map_add(struct store *st, const char *pair, int dir, uint64_t ring_id,
		       uint64_t ref)
{
	sqlite3_stmt *s = Q(st, Q_M_ADD);
	int rc;

	AUTO_TX_BEGIN(st);
	sqlite3_bind_text(s, 1, pair, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, dir);
	sqlite3_bind_int64(s, 3, (int64_t)ring_id);
	sqlite3_bind_int64(s, 4, (int64_t)ref);
	rc = step_done(st, s) == 1 ? 0 : -1;
	AUTO_TX_END(st, rc);
	return rc;
}

int store_dist_map_take(struct store *st, const char *pair, int dir, uint64_t ring_id,
			uint64_t *ref)
{
	sqlite3_stmt *g = Q(st, Q_M_GET), *del = Q(st, Q_M_DEL);
	int rc, found = 0;

	AUTO_TX_BEGIN(st);
	sqlite3_bind_text(g, 1, pair, -1, SQLITE_STATIC);
	sqlite3_bind_int(g, 2, dir);
	sqlite3_bind_int64(g, 3, (int64_t)ring_id);
	rc = sqlite3_step(g);
	if (rc == SQLITE_ROW) {
		*ref = (uint64_t)sqlite3_column_int64(g, 0);
		found = 1;
	}
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
	done(g);
	if (rc == 0 && found) {
		sqlite3_bind_text(del, 1, pair, -1, SQLITE_STATIC);
		sqlite3_bind_int(del, 2, dir);
		sqlite3_bind_int64(del, 3, (int64_t)ring_id);
		if (step_done(st, del) != 1)
			rc = -1;
	}
	AUTO_TX_END(st, rc);
	return rc < 0 ? -1 : found ? 0 : 1;
}

int store_dist_map_drain(struct store *st, const char *pair, int dir, uint64_t above_id,
			 void (*fn)(void *arg, uint64_t ring_id, uint64_t ref), void *arg)
{
	sqlite3_stmt *sel = Q(st, Q_M_SEL_ABOVE), *del = Q(st, Q_M_DEL_ABOVE);
	int rc, n = 0;

	AUTO_TX_BEGIN(st);
	sqlite3_bind_text(sel, 1, pair, -1, SQLITE_STATIC);
	sqlite3_bind_int(sel, 2, dir);
	sqlite3_bind_int64(sel, 3, (int64_t)above_id);
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		fn(arg, (uint64_t)sqlite3_column_int64(sel, 0),
		   (uint64_t)sqlite3_column_int64(sel, 1));
		n++;
	}
	rc = rc == SQLITE_DONE ? 0 : -1;
	done(sel);
	if (rc == 0) {
		sqlite3_bind_text(del, 1, pair, -1, SQLITE_STATIC);
		sqlite3_bind_int(del, 2, dir);
		sqlite3_bind_int64(del, 3, (int64_t)above_id);
		if (step_done(st, del) != n)
			rc = -1;
	}
	AUTO_TX_END(st, rc);
	return rc < 0 ? -1 : n;
}

int64_t store_dist_map_count(struct store *st, const char *pair, int dir)
{
	sqlite3_stmt *s = Q(st, Q_M_COUNT);
	int64_t v = -1;

	sqlite3_bind_text(s, 1, pair, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, dir);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	done(s);
	return v;
}

int store_link_stats(struct store *st, const char *link, struct store_link_stats *out)
{
	sqlite3_stmt *s = Q(st, Q_STATS);
	int rc;

	memset(out, 0, sizeof(*out));
	sqlite3_bind_text(s, 1, link, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int state = sqlite3_column_int(s, 0);

		if (state >= 0 && state < __BS_LAST) {
			out->blocks[state] = sqlite3_column_int64(s, 1);
			out->bytes[state] = sqlite3_column_int64(s, 2);
		}
	}
	done(s);
	if (rc != SQLITE_DONE)
		return -1;
	s = Q(st, Q_CNT_GET);
	sqlite3_bind_text(s, 1, link, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		out->verified_total = sqlite3_column_int64(s, 0);
		out->mismatched_total = sqlite3_column_int64(s, 1);
		out->orphaned_total = sqlite3_column_int64(s, 2);
	}
	done(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int store_link_verified_total(struct store *st, const char *link, uint64_t *verified)
{
	sqlite3_stmt *s = Q(st, Q_CNT_GET);
	int rc;

	*verified = 0;
	sqlite3_bind_text(s, 1, link, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*verified = (uint64_t)sqlite3_column_int64(s, 0);
	done(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int64_t store_link_live_bytes(struct store *st, const char *link)
{
	sqlite3_stmt *s = Q(st, Q_LIVE);
	int64_t v = -1;

	sqlite3_bind_text(s, 1, link, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	done(s);
	return v;
}

int store_link_live_split(struct store *st, const char *link, int64_t *unverified,
			  int64_t verified[2])
{
	sqlite3_stmt *s = Q(st, Q_LIVE_SPLIT);
	int rc = -1;

	sqlite3_bind_text(s, 1, link, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW) {
		*unverified = sqlite3_column_int64(s, 0);
		verified[0] = sqlite3_column_int64(s, 1);
		verified[1] = sqlite3_column_int64(s, 2);
		rc = 0;
	}
	done(s);
	return rc;
}

int64_t store_discard_surplus(struct store *st, const char *link, int parity, uint64_t bytes)
{
	sqlite3_stmt *s = Q(st, Q_SURPLUS_SEL);
	uint64_t ids[64], freed = 0;
	size_t n = 0;
	int rc = 0, own;

	sqlite3_bind_text(s, 1, link, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, parity & 1);
	sqlite3_bind_int64(s, 3, 64);
	while (freed < bytes && sqlite3_step(s) == SQLITE_ROW) {
		ids[n++] = (uint64_t)sqlite3_column_int64(s, 0);
		freed += (uint64_t)sqlite3_column_int64(s, 1);
	}
	done(s);
	if (!n)
		return 0;
	/* nothing leaves the process because of it: the loop pass's group may carry it */
	own = !st->in_tx;
	if (own && store_begin_grouped(st))
		return -1;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = store_discard(st, link, ids[i], DISCARD_SURPLUS, NULL, 0);
	if (own) {
		if (rc)
			store_rollback(st);
		else if (store_release(st))
			rc = -1;
	}
	return rc ? -1 : (int64_t)freed;
}

int store_sae_add(struct store *st, const char *key_id, const char *master, const char *slave,
		  const uint8_t *key, size_t len, int64_t now_ms)
{
	sqlite3_stmt *s = Q(st, Q_S_ADD);
	int rc;

	if (!key || len == 0 || len > STORE_BLOCK_MAX)
		return -1;
	AUTO_TX_BEGIN(st);
	sqlite3_bind_text(s, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, master, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, slave, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, now_ms);
	sqlite3_bind_blob(s, 5, key, (int)len, SQLITE_STATIC);
	rc = step_done(st, s);
	rc = rc < 0 ? -1 : rc == 0 ? 1 : 0;
	AUTO_TX_END(st, rc);
	return rc;
}

int store_sae_take(struct store *st, const char *key_id, const char *slave, const char *master,
		   uint8_t *out, size_t max, size_t *len)
{
	sqlite3_stmt *g = Q(st, Q_S_GET), *del = Q(st, Q_S_DEL);
	int rc, found = 0;

	AUTO_TX_BEGIN(st);
	sqlite3_bind_text(g, 1, key_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(g);
	if (rc == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(g, 0), master) &&
	    !strcmp((const char *)sqlite3_column_text(g, 1), slave)) {
		size_t n = (size_t)sqlite3_column_bytes(g, 2);

		if (n && n <= max) {
			memcpy(out, sqlite3_column_blob(g, 2), n);
			*len = n;
			found = 1;
		}
	}
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
	done(g);
	if (rc == 0 && found) {
		sqlite3_bind_text(del, 1, key_id, -1, SQLITE_STATIC);
		if (step_done(st, del) != 1)
			rc = -1;
	}
	AUTO_TX_END(st, rc);
	if (rc < 0 && found)
		explicit_bzero(out, *len);	/* not taken: nothing may leave */
	return rc < 0 ? -1 : found ? 0 : 1;
}

int store_sae_expire(struct store *st, int64_t older_than_ms)
{
	return op_int64(st, Q_S_EXPIRE, older_than_ms);
}

int store_sae_pending(struct store *st, void (*fn)(void *arg, const char *master,
						    const char *slave, uint64_t keys,
						    uint64_t bytes), void *arg)
{
	sqlite3_stmt *s = Q(st, Q_S_PENDING);
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		fn(arg, (const char *)sqlite3_column_text(s, 0),
		   (const char *)sqlite3_column_text(s, 1), (uint64_t)sqlite3_column_int64(s, 2),
		   (uint64_t)sqlite3_column_int64(s, 3));
	done(s);
	return rc == SQLITE_DONE ? 0 : -1;
}
