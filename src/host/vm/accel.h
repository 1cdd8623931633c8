#pragma once
/* Choosing between KVM and TCG. */
#include <stdbool.h>

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
