// SPDX-License-Identifier: GPL-2.0
/*
 * Per-byte cost of qotp's one-time-pad XOR against OpenSSL's AEADs on the same CPU and the
 * same buffers, measured side by side in one run (issue: make bench).
 *
 * The OTP path includes what the datapath does per segment besides the XOR itself: finding
 * the key span for a stream offset in the flow's span list. The AEADs run through EVP with
 * whatever SIMD OpenSSL picks (AES-NI, AVX2 ...), so they are at their best.
 *
 *   cryptobench [--csv FILE] [--seconds S]     (S per method and size, default 0.25, taken as
 *   five alternated samples of which the median is kept)
 * prints, for each message size, ns per byte for memcpy, OTP XOR, AES-256-GCM and
 * ChaCha20-Poly1305, and the ratios the targets are stated in. The CSV also holds
 * "qotp-xor-encdec": encrypt then decrypt of the message (ns per message byte for both),
 * checked to give the message back: the userspace curve of the paper's Fig. 8.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

struct span {			/* as the datapath keeps them: seq range -> key bytes */
	uint32_t seq_base;
	uint32_t len;
	const uint8_t *key;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * The loop of kmod/xor.c's qotp_xor(): 16-byte values (SSE2 in userspace, as in UML),
 * 64 bytes per iteration, loads before stores, then 16-, 8- and 1-byte tails.
 */
typedef uint64_t v16 __attribute__((vector_size(16), aligned(1)));

static void xor_bytes(uint8_t *dst, const uint8_t *src, const uint8_t *key, size_t n)
{
	while (n >= 64) {
		v16 a = *(const v16 *)src ^ *(const v16 *)key;
		v16 b = *(const v16 *)(src + 16) ^ *(const v16 *)(key + 16);
		v16 c = *(const v16 *)(src + 32) ^ *(const v16 *)(key + 32);
		v16 d = *(const v16 *)(src + 48) ^ *(const v16 *)(key + 48);

		*(v16 *)dst = a;
		*(v16 *)(dst + 16) = b;
		*(v16 *)(dst + 32) = c;
		*(v16 *)(dst + 48) = d;
		dst += 64;
		src += 64;
		key += 64;
		n -= 64;
	}
	while (n >= 16) {
		*(v16 *)dst = *(const v16 *)src ^ *(const v16 *)key;
		dst += 16;
		src += 16;
		key += 16;
		n -= 16;
	}
	if (n >= 8) {
		uint64_t a, k;

		memcpy(&a, src, 8);
		memcpy(&k, key, 8);
		a ^= k;
		memcpy(dst, &a, 8);
		dst += 8;
		src += 8;
		key += 8;
		n -= 8;
	}
	while (n--)
		*dst++ = *src++ ^ *key++;
}

/* Encrypt @n bytes at stream offset @seq: look up the span(s) covering them, XOR. */
static int otp_apply(const struct span *spans, int nspans, uint32_t seq, uint8_t *dst,
		     const uint8_t *src, size_t n)
{
	size_t done = 0;

	while (done < n) {
		uint32_t s = seq + (uint32_t)done;
		const struct span *sp = NULL;
		uint32_t off, take;

		for (int i = nspans - 1; i >= 0; i--) {
			if (s - spans[i].seq_base < spans[i].len) {
				sp = &spans[i];
				break;
			}
		}
		if (!sp)
			return -1;
		off = s - sp->seq_base;
		take = sp->len - off;
		if (take > n - done)
			take = (uint32_t)(n - done);
		xor_bytes(dst + done, src + done, sp->key + off, take);
		done += take;
	}
	return 0;
}

static int aead(const EVP_CIPHER *c, const uint8_t *key, const uint8_t *iv, uint8_t *out,
		const uint8_t *in, int n, uint8_t *tag)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int len, ok;

	ok = ctx && EVP_EncryptInit_ex(ctx, c, NULL, key, iv) &&
	     EVP_EncryptUpdate(ctx, out, &len, in, n) &&
	     EVP_EncryptFinal_ex(ctx, out + len, &len) &&
	     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag);
	EVP_CIPHER_CTX_free(ctx);
	return ok ? 0 : -1;
}

#define REPS	5

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

enum { M_MEMCPY, M_OTP, M_GCM, M_CHACHA, M_OTP_ED, M_N };
static const char *mname[M_N] = { "memcpy", "qotp-xor", "aes-256-gcm", "chacha20-poly1305",
				  "qotp-xor-encdec" };

int main(int argc, char **argv)
{
	static const size_t sizes[] = { 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072,
					262144, 524288, 1048576 };
	const char *csv = NULL;
	double seconds = 0.25;
	FILE *cf = NULL;
	uint8_t *src, *dst, *dst2, *pad, key[32], iv[12], tag[16];
	const size_t max = 1048576;
	struct span spans[4];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--csv") && i + 1 < argc) {
			csv = argv[++i];
		} else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			seconds = atof(argv[++i]);
			if (seconds <= 0) {
				fprintf(stderr, "cryptobench: bad --seconds `%s'\n", argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: cryptobench [--csv FILE] [--seconds S]\n"
			       "Compare ns/byte of memcpy, qotp OTP XOR, AES-256-GCM and ChaCha20-Poly1305.\n");
			return 0;
		} else {
			fprintf(stderr, "cryptobench: unknown argument `%s' (see --help)\n", argv[i]);
			return 2;
		}
	}
	src = malloc(max);
	dst = malloc(max + 16);
	dst2 = malloc(max);
	pad = malloc(max + 4096);
	if (!src || !dst || !dst2 || !pad) {
		perror("cryptobench: malloc");
		return 1;
	}
	if (RAND_bytes(src, (int)max) != 1 || RAND_bytes(pad, (int)max + 4096) != 1 ||
	    RAND_bytes(key, sizeof(key)) != 1 || RAND_bytes(iv, sizeof(iv)) != 1) {
		fprintf(stderr, "cryptobench: RAND_bytes failed\n");
		return 1;
	}
	/* Four spans of unequal size, the payload straddling them: the lookup is exercised. */
	spans[0] = (struct span){ 1000, 4096, pad };
	spans[1] = (struct span){ 1000 + 4096, 16384, pad + 4096 };
	spans[2] = (struct span){ 1000 + 4096 + 16384, 65536, pad + 4096 + 16384 };
	spans[3] = (struct span){ 1000 + 4096 + 16384 + 65536, (uint32_t)max,
				  pad + 4096 + 16384 + 65536 - 4096 };
	if (csv && !(cf = fopen(csv, "w"))) {
		fprintf(stderr, "cryptobench: cannot write `%s': %s\n", csv, strerror(errno));
		return 1;
	}
	if (cf)
		fprintf(cf, "size,method,ns_per_byte,MBps\n");
	printf("%-9s %12s %12s %12s %18s   %s\n", "size", "memcpy", "qotp-xor", "aes-256-gcm",
	       "chacha20-poly1305", "xor/memcpy  aead-best/xor  (ns/byte)");
	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		size_t n = sizes[si];
		double nspb[M_N], samp[M_N][REPS];

		/* REPS short samples per method, methods alternated, median kept: a busy
		 * neighbour on a shared machine then hits one sample, not one method. */
		for (int rep = 0; rep < REPS; rep++)
		for (int m = 0; m < M_N; m++) {
			double t0 = now(), t;
			long iters = 0;

			do {
				for (int k = 0; k < 16; k++) {
					int rc = 0;

					switch (m) {
					case M_MEMCPY:
						memcpy(dst, src, n);
						break;
					case M_OTP:
						rc = otp_apply(spans, 4, 1000 + 512, dst, src, n);
						break;
					case M_GCM:
						rc = aead(EVP_aes_256_gcm(), key, iv, dst, src, (int)n, tag);
						break;
					case M_CHACHA:
						rc = aead(EVP_chacha20_poly1305(), key, iv, dst, src, (int)n, tag);
						break;
					case M_OTP_ED:
						/* the paper's Fig. 8: encrypt, then decrypt what came out */
						rc = otp_apply(spans, 4, 1000 + 512, dst, src, n) ||
						     otp_apply(spans, 4, 1000 + 512, dst2, dst, n);
						break;
					}
					if (rc) {
						fprintf(stderr, "cryptobench: %s failed\n", mname[m]);
						return 1;
					}
					/* Keep the compiler from dropping the work. */
					__asm__ volatile("" : : "r"(dst) : "memory");
				}
				iters += 16;
				t = now() - t0;
			} while (t < seconds / REPS);
			samp[m][rep] = t * 1e9 / ((double)iters * n);
			if (m == M_OTP_ED && memcmp(dst2, src, n)) {
				fprintf(stderr, "cryptobench: OTP decrypt did not restore the message\n");
				return 1;
			}
		}
		for (int m = 0; m < M_N; m++) {
			qsort(samp[m], REPS, sizeof(double), cmp_double);
			nspb[m] = samp[m][REPS / 2];
			if (cf)
				fprintf(cf, "%zu,%s,%.4f,%.1f\n", n, mname[m], nspb[m], 1e3 / nspb[m]);
		}
		/* Both directions: the paper's figure is encrypt + decrypt of one message. */
		double best_aead = nspb[M_GCM] < nspb[M_CHACHA] ? nspb[M_GCM] : nspb[M_CHACHA];

		printf("%-9zu %12.4f %12.4f %12.4f %18.4f   %10.2f  %13.2f\n", n, nspb[M_MEMCPY],
		       nspb[M_OTP], nspb[M_GCM], nspb[M_CHACHA], nspb[M_MEMCPY] / nspb[M_OTP],
		       best_aead / nspb[M_OTP]);
	}
	if (cf)
		fclose(cf);
	explicit_bzero(key, sizeof(key));
	explicit_bzero(pad, max + 4096);
	free(src);
	free(dst);
	free(dst2);
	free(pad);
	return 0;
}
