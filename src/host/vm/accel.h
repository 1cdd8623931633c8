#pragma once
/* Choosing between KVM and TCG. */
#include <stdbool.h>
#include <stdint.h>

#include "options/config.h"
#include "err.h"

enum accel_kind { ACCEL_TCG = 0, ACCEL_KVM };

#define ACCEL_KVM_DEVICE "/dev/kvm"
/* How long the probe guest may take before KVM is called unusable. */
#define ACCEL_PROBE_DEADLINE_MS 300

/*
 * Resolves cfg->accel: "tcg" -> TCG; "kvm" -> KVM if the probe passes, else
 * an actionable error; "auto" -> KVM if the probe passes, else TCG, with a
 * one-line note on stderr saying why (unless quiet).
 */
int accel_choose(enum cfg_accel want, bool quiet, enum accel_kind *out,
		 struct ccvm_err *err);

/* accel_choose with the KVM device path given (tests). */
int accel_choose_dev(enum cfg_accel want, const char *dev, bool quiet,
		     enum accel_kind *out, struct ccvm_err *err);

/*
 * Probes whether KVM really runs a guest: opens /dev/kvm, creates a VM
 * and runs a tiny long-mode guest in a child with a short deadline.  0 when
 * usable; otherwise -errno with err saying why: -ENOENT (no device),
 * -EACCES (no permission), -ENOTTY (not a KVM device), -ETIMEDOUT (the
 * guest did not finish in ACCEL_PROBE_DEADLINE_MS), -EIO (the guest
 * failed: emulation failure, triple fault, wrong results) or another -errno
 * from a failed KVM ioctl.
 */
int accel_probe_kvm(const char *dev, struct ccvm_err *err);

/* "tcg" / "kvm". */
const char *accel_name(enum accel_kind k);

/* --- the probe's verdict and the choice, apart from a real device (tests) */

/* What the probe child tells the parent, one fixed-size record per write. */
enum accel_probe_kind {
	ACCEL_PROBE_SETUP_FAILED = 1, /* a = setup step, b = errno */
	ACCEL_PROBE_ENTERING,	      /* about to KVM_RUN */
	ACCEL_PROBE_PROGRESS,	      /* a = guest step 1..3 */
	ACCEL_PROBE_BAD_EXIT,	      /* a = exit reason, b = suberror/detail */
	ACCEL_PROBE_WRONG_RESULT,     /* a = which check */
	ACCEL_PROBE_DONE,
};

struct accel_probe_msg {
	int32_t kind, a, b;
};

/* What the parent saw of the probe guest. */
struct accel_probe_state {
	bool entered, done, got_result;
	int step; /* guest progress, 0..3 */
	struct accel_probe_msg last;
};

/* The verdict on what the parent saw: 0 (usable) or -errno with err
 * saying why not; timed_out: the deadline passed; wstatus: the child's
 * wait status. */
int accel_probe_verdict(const char *dev, const struct accel_probe_state *st,
			bool timed_out, int wstatus, struct ccvm_err *err);

typedef int (*accel_probe_fn)(const char *dev, struct ccvm_err *err);

/* accel_choose_dev with the probe given. */
int accel_choose_probe(enum cfg_accel want, const char *dev, bool quiet,
		       accel_probe_fn probe, enum accel_kind *out,
		       struct ccvm_err *err);
