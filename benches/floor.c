/* The floor of a context launch (issue 12): new PID, mount, UTS and IPC
 * namespaces, a fork, a fresh /proc, exec /bin/true, wait. Nothing else:
 * no cgroup, no filter, no init of its own. Built static by startup.sh.
 *
 * With options it adds, one by one, the least each of vsbox's features
 * can cost, so that what vsbox spends beyond them is its own:
 *   -c DIR  a cgroup of its own: mkdir DIR/N, clone3 into it, rmdir after
 *           (DIR: a cgroup v2 directory);
 *   -s N    a seccomp filter of N instructions allowing everything, in ten
 *           steps as vsbox's search does (the kernel converts, checks and
 *           compiles it as any other);
 *   -i      an init: PID 1 of the new namespace forks the command and
 *           waits for it, as vsbox's init does.
 *
 * With -j PID it is instead the floor of joining a running context (what
 * `vserver NAME exec true` does, and nsenter without the rest): setns(2)
 * into PID's PID namespace, a fork, its IPC, UTS, cgroup, mount and (when
 * it differs) user namespaces, uid and gid 0 there, exec /bin/true, wait.
 * -c DIR then names the context's cgroup v2 directory, joined at clone
 * time; -s N adds the filter; -i leaves a relay process between the
 * caller and the command, as vsbox's relay stays (a second fork).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

static int status_of(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) < 0)
		return 125;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void install_filter(int filter_len)
{
	struct sock_filter *f = calloc(filter_len, sizeof *f);
	for (int i = 0; i < filter_len - 1; i++)
		f[i] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0);
	/* A verdict in ten steps, as vsbox's search over the call number
	 * gives one: eight comparisons, then a jump to the return. When a
	 * filter is installed, the kernel's action cache runs it for every
	 * call number of both entry points (seccomp_cache_prepare), which
	 * costs the path, not the length: a straight run of 71 would add
	 * 0.1 ms. */
	if (filter_len > 11) {
		for (int i = 1; i <= 8; i++)
			f[i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 1000 + i, 0, 0);
		f[9] = (struct sock_filter)BPF_STMT(BPF_JMP | BPF_JA, filter_len - 11);
	}
	f[filter_len - 1] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog prog = { .len = filter_len, .filter = f };
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
		_exit(125);
}

/* In the new process: the filter if asked, then /bin/true — under an
 * init (or relay) that forks it and waits, when asked. */
static void run_true(int filter_len, int init)
{
	if (filter_len > 0)
		install_filter(filter_len);
	if (init) {
		pid_t cmd = fork();
		if (cmd < 0)
			_exit(125);
		if (cmd == 0) {
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
		_exit(status_of(cmd));
	}
	execl("/bin/true", "true", (char *)NULL);
	_exit(127);
}

static int open_ns(const char *pid, const char *ns)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%s/ns/%s", pid, ns);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* The join floor (-j): see the top of this file. */
static int join(const char *target, const char *cgroup, int filter_len, int relay)
{
	static const char *const order[] = { "ipc", "uts", "cgroup", "mnt" };
	int fds[4], pidns = open_ns(target, "pid"), userns = open_ns(target, "user");
	struct stat mine, theirs;
	if (pidns < 0 || userns < 0)
		return 125;
	if (stat("/proc/self/ns/user", &mine) == 0 && fstat(userns, &theirs) == 0 && mine.st_ino == theirs.st_ino) {
		close(userns);
		userns = -1;
	}
	for (int i = 0; i < 4; i++)
		if ((fds[i] = open_ns(target, order[i])) < 0)
			return 125;
	int cgfd = cgroup ? open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (setns(pidns, CLONE_NEWPID))
		return 125;
	struct clone_args args = {
		.flags = cgfd >= 0 ? CLONE_INTO_CGROUP : 0,
		.exit_signal = SIGCHLD,
		.cgroup = (unsigned)cgfd,
	};
	pid_t pid = syscall(SYS_clone3, &args, sizeof args);
	if (pid < 0)
		return 125;
	if (pid == 0) {
		for (int i = 0; i < 4; i++)
			if (setns(fds[i], 0))
				_exit(125);
		if (userns >= 0 && (setns(userns, CLONE_NEWUSER) || setgroups(0, NULL) || setresgid(0, 0, 0) || setresuid(0, 0, 0)))
			_exit(125);
		run_true(filter_len, relay);
	}
	return status_of(pid);
}

int main(int argc, char **argv)
{
	const char *cgroup = NULL, *target = NULL;
	int filter_len = 0, init = 0, opt;
	while ((opt = getopt(argc, argv, "c:s:ij:")) != -1) {
		switch (opt) {
		case 'c': cgroup = optarg; break;
		case 's': filter_len = atoi(optarg); break;
		case 'i': init = 1; break;
		case 'j': target = optarg; break;
		default: return 125;
		}
	}
	if (target)
		return join(target, cgroup, filter_len, init);
	char dir[4096];
	int cgfd = -1;
	if (cgroup) {
		snprintf(dir, sizeof dir, "%s/floor.%d", cgroup, getpid());
		if (mkdir(dir, 0755) || (cgfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			return 125;
	}
	if (unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | (cgroup ? 0 : CLONE_NEWPID)))
		return 125;
	pid_t pid;
	if (cgroup) {
		struct clone_args args = {
			.flags = CLONE_NEWPID | CLONE_INTO_CGROUP,
			.exit_signal = SIGCHLD,
			.cgroup = (unsigned)cgfd,
		};
		pid = syscall(SYS_clone3, &args, sizeof args);
	} else {
		pid = fork();
	}
	if (pid < 0)
		return 125;
	if (pid == 0) {
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
		    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
			_exit(125);
		run_true(filter_len, init);
	}
	int rc = status_of(pid);
	if (cgroup)
		rmdir(dir);
	return rc;
}
