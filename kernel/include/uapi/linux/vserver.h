/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * vserver.h - the user-space ABI of the vsbox kernel patch.
 *
 * One multiplexed system call, sys_vserver(cmd, id, data), on the number
 * x86_64 has kept reserved for Linux-VServer since 2.6.  vsbox's build.rs
 * reads the #defines below and turns them into Rust constants, so the
 * binary and the patch cannot drift apart: edit the numbers here only.
 */
#ifndef _UAPI_LINUX_VSERVER_H
#define _UAPI_LINUX_VSERVER_H

#include <linux/types.h>

/* x86_64 syscall_64.tbl: "236 common vserver" (i386: 273). */
#define __NR_vserver_x86_64	236

/* Version of this ABI, returned by VCMD_get_version. */
#define VCI_VERSION		0x00030000

/* Commands: (category << 8) | number. */
#define VCMD_get_version	0x0000
#define VCMD_ctx_create		0x0101	/* id: wanted xid or VX_DYNAMIC_ID */
#define VCMD_ctx_migrate	0x0102	/* move the caller into context id */
#define VCMD_ctx_info		0x0103	/* data: struct vcmd_ctx_info */
#define VCMD_set_cflags		0x0201	/* data: struct vcmd_ctx_flags */
#define VCMD_get_cflags		0x0202
#define VCMD_set_bcaps		0x0203	/* data: __u64 capability ceiling */
#define VCMD_set_ipv4root	0x0301	/* data: struct vcmd_net_addrs */

/* Context flags: the bits of the original new_s_context(). */
#define VXF_LOCK		0x0001	/* no further context switch */
#define VXF_SCHED		0x0002	/* the context weighs as one task */
#define VXF_NPROC		0x0004	/* RLIMIT_NPROC counts the context */
#define VXF_PRIVATE		0x0008	/* nobody may join the context */
#define VXF_FAKEINIT		0x0010	/* the first process is the init */
#define VXF_HIDEINFO		0x0020	/* hide host information */
#define VXF_ULIMIT		0x0040	/* per-context ulimits */

/* Context ids. */
#define VX_ID_HOST		0	/* the main server */
#define VX_ID_SPECTATOR		1	/* sees all, signals none */
#define VX_STATIC_MIN		2
#define VX_STATIC_MAX		49151
#define VX_DYNAMIC_MIN		49152
#define VX_DYNAMIC_MAX		65535
#define VX_DYNAMIC_ID		((__u32)-1)	/* "allocate one for me" */

/* Maximum addresses in one ipv4root. */
#define VX_NET_MAX_ADDRS	16

struct vcmd_ctx_info {
	__u32 xid;
	__u32 flags;
	__u64 bcaps;
	__u32 init_pid;
	__u32 nr_tasks;
};

struct vcmd_ctx_flags {
	__u64 flags;
	__u64 mask;
};

struct vcmd_net_addrs {
	__u32 count;
	__u32 addr[VX_NET_MAX_ADDRS];	/* network byte order */
};

#endif /* _UAPI_LINUX_VSERVER_H */
