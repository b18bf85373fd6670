// SPDX-License-Identifier: GPL-2.0
/* Key caching state machine (see caching.h). Pure logic over the store: no I/O. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

#include "budget.h"
#include "caching.h"
#include "log.h"

static const char tag_label[] = "qotp-cache-v1";

void cache_link_init(struct cache_link *cl, struct store *st, const char *self,
		     const char *peer, const struct cache_params *prm, uint64_t first_txid)
{
	int cmp = strcmp(self, peer);

	memset(cl, 0, sizeof(*cl));
	cl->st = st;
	snprintf(cl->link, sizeof(cl->link), "%s", peer);
	snprintf(cl->pair, sizeof(cl->pair), "%s|%s", cmp < 0 ? self : peer, cmp < 0 ? peer : self);
	cl->leader = cmp < 0;
	cl->prm = *prm;
	if (cl->prm.round_blocks == 0 || cl->prm.round_blocks > MSG_MAX_BLOCKS)
		cl->prm.round_blocks = MSG_MAX_BLOCKS;
	cl->next_txid = first_txid ? first_txid : 1;
	cl->cap = cl->prm.round_blocks;
}

/*
 * A leader step of a round over n blocks took us: size the next round to the budget, but
 * never below an eighth of round_blocks. One round is in flight per link, so a link caches
 * at most cap blocks per round trip; a step's fixed cost (the store's queries and commit)
 * alone can exceed the budget on a loaded host, and the fit then shrinks rounds to one
 * block: in a loaded test kernel that was one 32 KiB block a second per link.
 */
static void round_took(struct cache_link *cl, size_t n, uint64_t us)
{
	unsigned lo = cl->prm.round_blocks / CACHE_ROUND_FLOOR_DIV;
	unsigned cap = budget_next(cl->cap, n, us, cl->prm.round_budget_us, lo ? lo : 1,
				   cl->prm.round_blocks);

	if (cap < cl->cap)
		cl->rounds_shrunk++;
	cl->cap = cap;
}

int cache_tag(const char *pair, uint64_t id, const uint8_t *raw, size_t len,
	      uint8_t tag[KMS_TAG_LEN])
{
	static EVP_MAC *hmac;
	uint8_t hdr[12], mac[EVP_MAX_MD_SIZE];
	OSSL_PARAM prm[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	size_t maclen = 0;
	EVP_MAC_CTX *h;
	int ok;

	if (len <= CACHE_STRIP)
		return -1;
	if (!hmac && !(hmac = EVP_MAC_fetch(NULL, "HMAC", NULL)))
		return -1;
	for (int i = 0; i < 8; i++)
		hdr[i] = id >> (56 - 8 * i);
	for (int i = 0; i < 4; i++)
		hdr[8 + i] = (uint32_t)len >> (24 - 8 * i);
	h = EVP_MAC_CTX_new(hmac);
	if (!h)
		return -1;
	ok = EVP_MAC_init(h, raw, CACHE_TAG_KEY_LEN, prm) &&
	     EVP_MAC_update(h, (const uint8_t *)tag_label, sizeof(tag_label)) &&
	     EVP_MAC_update(h, (const uint8_t *)pair, strlen(pair) + 1) &&
	     EVP_MAC_update(h, hdr, sizeof(hdr)) &&
	     EVP_MAC_update(h, raw + CACHE_STRIP, len - CACHE_STRIP) &&
	     EVP_MAC_final(h, mac, &maclen, sizeof(mac)) && maclen == KMS_TAG_LEN;
	EVP_MAC_CTX_free(h);
	if (ok)
		for (int i = 0; i < KMS_TAG_LEN; i++)
			tag[i] = mac[i] ^ raw[CACHE_TAG_KEY_LEN + i];
	explicit_bzero(mac, sizeof(mac));
	return ok ? 0 : -1;
}

static uint8_t *keybuf(void)
{
	static uint8_t *buf;

	if (!buf)
		buf = malloc(STORE_BLOCK_MAX);
	return buf;
}

int cache_round_start(struct cache_link *cl, int64_t now_ms, struct msg *out)
{
	uint8_t *raw = keybuf();
	size_t n = 0, len;
	uint64_t txid, t0 = budget_now_us();
	int state;

	if (!cl->leader || cl->txid || !raw)
		return cl->leader && !raw ? -1 : 0;
	txid = cl->next_txid++;
	if (cl->cap > cl->prm.round_blocks)	/* lowered by a reload */
		cl->cap = cl->prm.round_blocks;
	if (store_lock_fresh(cl->st, cl->link, cl->cap, txid, now_ms,
			     cl->prm.min_block_age_ms, now_ms + cl->prm.lock_timeout_ms, cl->ids,
			     &n) < 0) {
		log_warnx("link %s: locking fresh blocks: %s", cl->link, store_errmsg(cl->st));
		return -1;
	}
	if (n == 0)
		return 0;
	out->type = MSG_VERIFY_REQ;
	out->vreq.txid = txid;
	out->vreq.count = 0;
	for (size_t i = 0; i < n; i++) {
		struct msg_block_tag *b = &out->vreq.blocks[out->vreq.count];

		if (store_get(cl->st, cl->link, cl->ids[i], &state, raw, &len, NULL, NULL) ||
		    state != BS_LOCKED) {
			/*
			 * A store error: give the round up, do not discard (the follower may
			 * hold this block verified from a round whose answer we lost).
			 */
			explicit_bzero(raw, STORE_BLOCK_MAX);
			log_warnx("link %s: reading block %llu: %s", cl->link,
				  (unsigned long long)cl->ids[i], store_errmsg(cl->st));
			store_unlock(cl->st, cl->link, txid);
			return -1;
		}
		if (cache_tag(cl->pair, cl->ids[i], raw, len, b->tag)) {
			/*
			 * Too short to carry a tag: it can never be verified at either end (the
			 * follower cannot compute a tag either), so discard it.
			 */
			explicit_bzero(raw, len);
			store_discard(cl->st, cl->link, cl->ids[i], DISCARD_ORPHAN, NULL, 0);
			continue;
		}
		explicit_bzero(raw, len);
		b->id = cl->ids[i];
		b->len = len;
		cl->ids[out->vreq.count] = b->id;
		memcpy(cl->tags[out->vreq.count], b->tag, KMS_TAG_LEN);
		out->vreq.count++;
	}
	round_took(cl, n, budget_now_us() - t0);
	if (out->vreq.count == 0)
		return 0;
	cl->n = out->vreq.count;
	cl->txid = txid;
	cl->deadline_ms = now_ms + cl->prm.lock_timeout_ms;
	cl->rounds++;
	return 1;
}

/* One block of a request, inside the follower's transaction. */
static int follower_block(struct cache_link *cl, const struct msg_block_tag *b, uint8_t *raw,
			  uint8_t *status)
{
	uint8_t mine[KMS_TAG_LEN], stored[KMS_TAG_LEN];
	int state, has_tag, rc;
	size_t len;

	rc = store_get(cl->st, cl->link, b->id, &state, raw, &len, stored, &has_tag);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		*status = VERIFY_MISSING;
		return 0;
	}
	if (state != BS_FRESH && state != BS_LOCKED)
		explicit_bzero(raw, len);	/* only fresh blocks need their bytes here */
	switch (state) {
	case BS_FRESH:
	case BS_LOCKED:
		rc = len == b->len ? cache_tag(cl->pair, b->id, raw, len, mine) : -1;
		explicit_bzero(raw, len);
		if (rc == 0 && CRYPTO_memcmp(mine, b->tag, KMS_TAG_LEN) == 0) {
			*status = VERIFY_OK;
			return store_verify(cl->st, cl->link, b->id, b->tag, KMS_TAG_LEN,
					    CACHE_STRIP) < 0 ? -1 : 0;
		}
		*status = VERIFY_MISMATCH;
		log_info("link %s: block %llu mismatch, discarded", cl->link,
			 (unsigned long long)b->id);
		return store_discard(cl->st, cl->link, b->id, DISCARD_MISMATCH, b->tag,
				     KMS_TAG_LEN) < 0 ? -1 : 0;
	case BS_DISCARDED:
		/* a tag is kept only for mismatches; a tagless tombstone expired unverified */
		*status = has_tag ? VERIFY_MISMATCH : VERIFY_MISSING;
		return 0;
	default:
		/* Already verified in an earlier round whose answer the leader lost. */
		if (has_tag && CRYPTO_memcmp(stored, b->tag, KMS_TAG_LEN) == 0) {
			*status = VERIFY_OK;
			return 0;
		}
		/*
		 * The leader's copy changed since (corruption, or a broken leader). It will
		 * discard the block on our answer; so do we while it is unused, so both stores
		 * agree. A block already handed out cannot be recalled: say so loudly.
		 */
		*status = VERIFY_MISMATCH;
		log_warnx("link %s: block %llu (%s) re-verified with a different tag%s", cl->link,
			  (unsigned long long)b->id, block_state_name(state),
			  state == BS_VERIFIED ? ", discarded" : ", ALREADY HANDED OUT");
		if (state == BS_VERIFIED)
			return store_discard(cl->st, cl->link, b->id, DISCARD_MISMATCH, b->tag,
					     KMS_TAG_LEN) < 0 ? -1 : 0;
		return 0;
	}
}

int cache_handle_req(struct cache_link *cl, const struct msg *in, struct msg *out)
{
	uint8_t *raw = keybuf();

	if (cl->leader || !raw || in->type != MSG_VERIFY_REQ)
		return -1;
	if (store_begin(cl->st) < 0)
		return -1;
	out->type = MSG_VERIFY_RESP;
	out->vresp.txid = in->vreq.txid;
	out->vresp.count = in->vreq.count;
	for (size_t i = 0; i < in->vreq.count; i++) {
		out->vresp.blocks[i].id = in->vreq.blocks[i].id;
		if (follower_block(cl, &in->vreq.blocks[i], raw,
				   &out->vresp.blocks[i].status) < 0) {
			log_warnx("link %s: verifying round %llu: %s", cl->link,
				  (unsigned long long)in->vreq.txid, store_errmsg(cl->st));
			store_rollback(cl->st);
			return -1;
		}
	}
	if (store_commit(cl->st) < 0) {
		log_warnx("link %s: committing round %llu: %s", cl->link,
			  (unsigned long long)in->vreq.txid, store_errmsg(cl->st));
		return -1;
	}
	return 0;
}

int cache_handle_resp(struct cache_link *cl, const struct msg *in, int64_t now_ms)
{
	unsigned ok = 0, bad = 0, missing = 0;
	uint64_t t0 = budget_now_us();

	if (!cl->leader || in->type != MSG_VERIFY_RESP)
		return -1;
	if (!cl->txid || in->vresp.txid != cl->txid) {
		log_debug("link %s: answer to stale round %llu ignored", cl->link,
			  (unsigned long long)in->vresp.txid);
		return 1;
	}
	if (in->vresp.count != cl->n)
		return -1;
	for (size_t i = 0; i < cl->n; i++)
		if (in->vresp.blocks[i].id != cl->ids[i])
			return -1;
	if (store_begin(cl->st) < 0)
		return -1;
	for (size_t i = 0; i < cl->n; i++) {
		int rc = 0;

		switch (in->vresp.blocks[i].status) {
		case VERIFY_OK:
			rc = store_verify(cl->st, cl->link, cl->ids[i], cl->tags[i], KMS_TAG_LEN,
					  CACHE_STRIP);
			ok++;
			break;
		case VERIFY_MISMATCH:
			rc = store_discard(cl->st, cl->link, cl->ids[i], DISCARD_MISMATCH,
					   cl->tags[i], KMS_TAG_LEN);
			bad++;
			break;
		default:
			/*
			 * Not (yet) at the peer: ask again later, not in every round, so that
			 * orphans (blocks the peer lost in a crash) cannot starve the queue.
			 * Once older than fresh-max-age the peer's answer settles it: orphan.
			 */
			rc = store_defer(cl->st, cl->link, cl->ids[i],
					 now_ms + CACHE_MISSING_RETRY_MS,
					 now_ms - cl->prm.fresh_max_age_ms) > 0 ? 0 : -1;
			missing++;
			break;
		}
		if (rc < 0) {
			log_warnx("link %s: applying round %llu: %s", cl->link,
				  (unsigned long long)cl->txid, store_errmsg(cl->st));
			store_rollback(cl->st);
			return -1;
		}
	}
	if (store_unlock(cl->st, cl->link, cl->txid) < 0 || store_commit(cl->st) < 0) {
		store_rollback(cl->st);
		return -1;
	}
	round_took(cl, cl->n, budget_now_us() - t0);
	log_debug("link %s: round %llu: %u verified, %u mismatched, %u missing (next round %u blocks)",
		  cl->link, (unsigned long long)cl->txid, ok, bad, missing, cl->cap);
	if (bad)
		log_info("link %s: round %llu discarded %u mismatched blocks", cl->link,
			 (unsigned long long)cl->txid, bad);
	cl->txid = 0;
	cl->n = 0;
	return 0;
}

void cache_peer_lost(struct cache_link *cl)
{
	if (cl->txid && store_unlock(cl->st, cl->link, cl->txid) < 0)
		log_warnx("link %s: releasing locks: %s", cl->link, store_errmsg(cl->st));
	cl->txid = 0;
	cl->n = 0;
}

void cache_tick(struct cache_link *cl, int64_t now_ms)
{
	int n;

	if (cl->txid && now_ms >= cl->deadline_ms) {
		log_warnx("link %s: round %llu timed out, locks released", cl->link,
			  (unsigned long long)cl->txid);
		cl->rounds_timed_out++;
		cache_peer_lost(cl);
	}
	/*
	 * Only the follower expires blocks it was never asked about. The leader must not: the
	 * follower may have verified a block in a round whose answer the leader lost, and the
	 * two stores would disagree. The leader expires a block only after the follower has
	 * answered "missing" for it (cache_handle_resp).
	 */
	if (!cl->leader) {
		n = store_purge_stale(cl->st, cl->link, now_ms - cl->prm.fresh_max_age_ms);
		if (n > 0)
			log_info("link %s: %d unverified blocks expired", cl->link, n);
	}
}
