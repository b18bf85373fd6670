// SPDX-License-Identifier: GPL-2.0
/*
 * qotp: one-time-pad encryption of RTMP payloads, keyed by a QKD key management network.
 *
 * Module and per-network-namespace lifetime. Every netns gets a struct qotp_net (through
 * pernet_operations and net_generic) with its own configuration, peers, key rings, flows
 * and event queue; deleting the netns or unloading the module wipes and frees all of it.
 */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/rcupdate.h>
#include <linux/sizes.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>
#include <net/genetlink.h>

#include "qotp.h"
#include "netlink.h"
#include "peer.h"

/* Defaults of a fresh netns: nothing is protected until userspace sets a mode. */
#define QOTP_DEFAULT_RING_MAX	(16ULL * SZ_1M)
#define QOTP_DEFAULT_LOW_WM	(1ULL * SZ_1M)
#define QOTP_DEFAULT_MAX_FLOWS	4096

static unsigned int qotp_net_id __read_mostly;

struct qotp_net *qotp_net(const struct net *net)
{
	return net_generic(net, qotp_net_id);
}

static int __net_init qotp_net_init(struct net *net)
{
	struct qotp_net *qn = qotp_net(net);
	int err;

	qn->net = net;
	qn->mode = 0;
	qn->ports[0] = QOTP_DEFAULT_PORT;
	qn->nports = 1;
	qn->ring_max_bytes = QOTP_DEFAULT_RING_MAX;
	qn->low_watermark = QOTP_DEFAULT_LOW_WM;
	qn->max_flows = QOTP_DEFAULT_MAX_FLOWS;

	err = qotp_cp_init(qn);
	if (err)
		return err;
	err = qotp_dp_net_init(qn);
	if (err)
		goto err_cp;
	return 0;

err_cp:
	qotp_cp_exit(qn);
	return err;
}

static void __net_exit qotp_net_exit(struct net *net)
{
	struct qotp_net *qn = qotp_net(net);

	/* Flows first: they hold key refs and peer refs, which the peers' teardown then
	 * finds released. */
	qotp_dp_net_exit(qn);
	qotp_cp_exit(qn);
}

static struct pernet_operations qotp_net_ops = {
	.init = qotp_net_init,
	.exit = qotp_net_exit,
	.id = &qotp_net_id,
	.size = sizeof(struct qotp_net),
};

static int __init qotp_init(void)
{
	int err;

	/* State before the family: a command can arrive as soon as it is registered. */
	err = register_pernet_subsys(&qotp_net_ops);
	if (err)
		return err;
	err = qotp_genl_init();
	if (err)
		goto err_pernet;
	return 0;

err_pernet:
	unregister_pernet_subsys(&qotp_net_ops);
	return err;
}

static void __exit qotp_exit(void)
{
	qotp_genl_exit();
	unregister_pernet_subsys(&qotp_net_ops);
	/* call_rcu() callbacks queued by the teardown (blocks, peers, ...) run our code. */
	rcu_barrier();
}

module_init(qotp_init);
module_exit(qotp_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("One-time-pad encryption of RTMP streams with QKD keys");
MODULE_AUTHOR("qotp authors");
MODULE_ALIAS_GENL_FAMILY(QOTP_GENL_NAME);
