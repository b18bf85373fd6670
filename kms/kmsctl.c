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
	const char *help;
} commands[] = {
	{ "status", "Shows the node, uptime and how many links are up" },
	{ "links", "Shows each link: peer channel, QKD source, verified key, mismatch rate" },
	{ "keys", "Shows the key blocks of each link by state" },
	{ "routes", "Shows the key routing table (next hop, metric, status) and neighbours" },
	{ "pairs", "Shows key distribution to the qotp kernel rings of each encryptor pair" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: kmsctl [-s socket] [--json] <command>\n"
		   "  -s, --socket PATH   kmsd control socket (default /run/kmsd/kmsd.sock)\n"
		   "  -j, --json          machine-readable output\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
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
	char req[64], buf[4096];
	int c, json = 0, fd, known = 0;
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
	if (optind + 1 != argc) {
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		known |= !strcmp(argv[optind], commands[i].name);
	if (!known) {
		fprintf(stderr, "kmsctl: unknown command: `%s'\n", argv[optind]);
		usage(stderr);
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
	snprintf(req, sizeof(req), "%s%s\n", argv[optind], json ? " json" : "");
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
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
