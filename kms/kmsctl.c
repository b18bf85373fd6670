// SPDX-License-Identifier: GPL-2.0
/* kmsctl: asks a running kmsd, over its control socket, for status, links, keys and routes. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const struct {
	const char *name;
	int nargs;
	const char *args;
	const char *help;
} commands[] = {
	{ "status", 0, "", "Shows the node, links, routes and key transfer counters" },
	{ "links", 0, "", "Shows each link: peer channel, QKD source, verified key, mismatch rate" },
	{ "keys", 0, "", "Shows the key blocks of each link by state" },
	{ "routes", 0, "", "Shows the key routing table (next hop, metric, status) and neighbours" },
	{ "pairs", 0, "", "Shows key distribution to the qotp kernel rings of each encryptor pair" },
	{ "transfers", 0, "", "Shows the committed transfer keys (ids, states, fingerprints)" },
	{ "saes", 0, "", "Shows the ETSI 014 KME: SAEs, request counters, keys held\n"
	  "                       for slave SAEs (counts, never key bytes)" },
	{ "transfer", 2, " NODE BYTES",
	  "Transfers BYTES of fresh key to NODE through the PPETP\n"
	  "                       relay; waits for the commit, prints the key's fingerprint" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: kmsctl [-s socket] [--json] <command> [args]\n"
		   "  -s, --socket PATH   kmsd control socket (default /run/kmsd/kmsd.sock)\n"
		   "  -j, --json          machine-readable output\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		char syn[32];

		snprintf(syn, sizeof(syn), "%s%s", commands[i].name, commands[i].args);
		fprintf(f, "  %-20s %s\n", syn, commands[i].help);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = "/run/kmsd/kmsd.sock";
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char req[256], buf[4096];
	int c, json = 0, fd, known = -1;
	size_t rl;
	ssize_t n;
	size_t total = 0;

	while ((c = getopt_long(argc, argv, "s:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's': path = optarg; break;
		case 'j': json = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[optind], commands[i].name))
			known = (int)i;
	if (known < 0) {
		fprintf(stderr, "kmsctl: unknown command: `%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (argc - optind - 1 != commands[known].nargs) {
		fprintf(stderr, "kmsctl: usage: kmsctl %s%s\n", commands[known].name,
			commands[known].args);
		return 2;
	}
	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "kmsctl: socket path too long: `%s'\n", path);
		return 1;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "kmsctl: cannot connect to kmsd at `%s': %s\n", path,
			strerror(errno));
		return 1;
	}
	rl = (size_t)snprintf(req, sizeof(req), "%s", argv[optind]);
	for (int i = optind + 1; i < argc && rl < sizeof(req); i++) {
		if (!argv[i][0] || strpbrk(argv[i], " \t\n")) {
			fprintf(stderr, "kmsctl: bad argument: `%s'\n", argv[i]);
			return 2;
		}
		rl += (size_t)snprintf(req + rl, sizeof(req) - rl, " %s", argv[i]);
	}
	if (rl < sizeof(req))
		rl += (size_t)snprintf(req + rl, sizeof(req) - rl, "%s\n", json ? " json" : "");
	if (rl >= sizeof(req) || rl > 250) {
		fprintf(stderr, "kmsctl: request too long\n");
		return 2;
	}
	if (write(fd, req, rl) != (ssize_t)rl) {
		fprintf(stderr, "kmsctl: write: %s\n", strerror(errno));
		return 1;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (fwrite(buf, 1, n, stdout) != (size_t)n)
			return 1;
		total += n;
	}
	close(fd);
	if (n < 0 || total == 0) {
		fprintf(stderr, "kmsctl: no answer from kmsd%s%s\n", n < 0 ? ": " : "",
			n < 0 ? strerror(errno) : "");
		return 1;
	}
	return strncmp(buf, "error:", 6) ? 0 : 1;
}
