/* The no-setuid seccomp filter: see nosuid.h. */
#define _GNU_SOURCE
#include "sys/nosuid.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NOSUID_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NOSUID_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "nosuid.c: unknown seccomp architecture"
#endif

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452 /* Linux 6.6, the same number everywhere */
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
/* x86_64's x32 calls carry this bit and the x86_64 audit arch. */
#define X32_SYSCALL_BIT 0x40000000u

/* The low 32 bits of argument i (modes and flags are ints). */
#if __BYTE_ORDER == __LITTLE_ENDIAN
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#else
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i) + 4)
#endif

#define SUID_BITS  ((uint32_t)(S_ISUID | S_ISGID))
#define CREAT_BITS ((uint32_t)(O_CREAT | (O_TMPFILE & ~O_DIRECTORY)))

/* Jump targets, resolved when the program is complete. */
enum label {
	L_NEXT = 0, /* the following instruction */
	L_MODE1,    /* the mode is argument 1 */
	L_MODE2,
	L_MODE3,
	L_OPEN, /* open: flags 1, mode 2 */
	L_OPENAT,
	L_EPERM,
	L_ENOSYS,
	L_ALLOW,
	L_COUNT
};

#define PROG_MAX 48

struct prog {
	struct sock_filter f[PROG_MAX];
	unsigned char jt[PROG_MAX], jf[PROG_MAX]; /* enum label */
	unsigned at[L_COUNT];
	unsigned n;
	bool overflow;
};

static void emit(struct prog *p, uint16_t code, uint32_t k, enum label jt,
		 enum label jf)
{
	if (p->n >= PROG_MAX) {
		p->overflow = true;
		return;
	}
	p->f[p->n] = (struct sock_filter){.code = code, .k = k};
	p->jt[p->n] = (unsigned char)jt;
	p->jf[p->n] = (unsigned char)jf;
	p->n++;
}

static void mark(struct prog *p, enum label l)
{
	p->at[l] = p->n;
}

/* The system call number nr goes to l. */
static void on_nr(struct prog *p, long nr, enum label l)
{
	emit(p, BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, l, L_NEXT);
}

/* A mode in argument i with either bit: EPERM. */
static void mode_check(struct prog *p, enum label l, unsigned i)
{
	mark(p, l);
	emit(p, BPF_LD | BPF_W | BPF_ABS, (uint32_t)ARG_LO(i), L_NEXT, L_NEXT);
	emit(p, BPF_JMP | BPF_JSET | BPF_K, SUID_BITS, L_EPERM, L_ALLOW);
}

/* Flags in argument i: a creating open goes on to l's mode check. */
static void creat_check(struct prog *p, enum label l, unsigned i,
			enum label mode)
{
	mark(p, l);
	emit(p, BPF_LD | BPF_W | BPF_ABS, (uint32_t)ARG_LO(i), L_NEXT, L_NEXT);
	emit(p, BPF_JMP | BPF_JSET | BPF_K, CREAT_BITS, mode, L_ALLOW);
}

/* Turns labels into forward offsets; false when one does not fit. */
static bool resolve(struct prog *p)
{
	for (unsigned i = 0; i < p->n; i++) {
		unsigned char *j[2] = {&p->jt[i], &p->jf[i]};
		uint8_t *out[2] = {&p->f[i].jt, &p->f[i].jf};
		for (int k = 0; k < 2; k++) {
			unsigned to = *j[k] == L_NEXT ? i + 1 : p->at[*j[k]];
			if (to <= i || to - i - 1 > 255)
				return false;
			*out[k] = (uint8_t)(to - i - 1);
		}
	}
	return true;
}

static void build(struct prog *p)
{
	emit(p, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch),
	     L_NEXT, L_NEXT);
	emit(p, BPF_JMP | BPF_JEQ | BPF_K, NOSUID_AUDIT_ARCH, L_NEXT, L_ALLOW);
	emit(p, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr),
	     L_NEXT, L_NEXT);
	emit(p, BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, L_ENOSYS, L_NEXT);
#ifdef SYS_chmod
	on_nr(p, SYS_chmod, L_MODE1);
#endif
#ifdef SYS_creat
	on_nr(p, SYS_creat, L_MODE1);
#endif
#ifdef SYS_mkdir
	on_nr(p, SYS_mkdir, L_MODE1);
#endif
#ifdef SYS_mknod
	on_nr(p, SYS_mknod, L_MODE1);
#endif
#ifdef SYS_open
	on_nr(p, SYS_open, L_OPEN);
#endif
	on_nr(p, SYS_fchmod, L_MODE1);
	on_nr(p, SYS_fchmodat, L_MODE2);
	on_nr(p, SYS_fchmodat2, L_MODE2);
	on_nr(p, SYS_mkdirat, L_MODE2);
	on_nr(p, SYS_mknodat, L_MODE2);
	on_nr(p, SYS_openat, L_OPENAT);
	on_nr(p, SYS_openat2, L_ENOSYS);
	emit(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, L_NEXT, L_NEXT);
	creat_check(p, L_OPEN, 1, L_MODE2);
	creat_check(p, L_OPENAT, 2, L_MODE3);
	mode_check(p, L_MODE1, 1);
	mode_check(p, L_MODE2, 2);
	mode_check(p, L_MODE3, 3);
	mark(p, L_EPERM);
	emit(p, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM, L_NEXT, L_NEXT);
	mark(p, L_ENOSYS);
	emit(p, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS, L_NEXT, L_NEXT);
	mark(p, L_ALLOW);
	emit(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, L_NEXT, L_NEXT);
}

int nosuid_install(bool set_nnp)
{
	struct prog p = {.n = 0};
	build(&p);
	if (p.overflow || !resolve(&p)) {
		errno = EOVERFLOW;
		return -1;
	}
	if (set_nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	struct sock_fprog prog = {.len = (unsigned short)p.n, .filter = p.f};
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0 ? -1
									   : 0;
}
