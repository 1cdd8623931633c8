#pragma once
/* Choosing between KVM and TCG. */
#include <stdbool.h>

#include "config.h"
#include "err.h"

enum accel_kind { ACCEL_TCG = 0, ACCEL_KVM };

/*
 * Resolves cfg->accel: "tcg" -> TCG; "kvm" -> KVM if the probe passes, else
 * an actionable error; "auto" -> KVM if the probe passes, else TCG, with a
 * one-line note on stderr saying why (unless quiet).
 */
int accel_choose(enum cfg_accel want, bool quiet, enum accel_kind *out,
		 struct ccvm_err *err);

/*
 * Probes whether KVM really runs a guest: opens /dev/kvm, creates a VM
 * and runs a tiny long-mode guest in a child with a short deadline.  0 when
 * usable; otherwise -errno with err saying why (no device, no permission,
 * device present but not working).
 */
int accel_probe_kvm(const char *dev, struct ccvm_err *err);
