#pragma once
/*
 * Whether the guest has a locale, for the LANG and LC_* values the host
 * hands over: a value the guest lacks would make every program of the
 * agent warn (or fall back to ASCII) instead of using UTF-8.
 */
#include <stdbool.h>

/* Where the guest's compiled locales are. */
#define LOCALE_DIR "/usr/lib/locale"

/*
 * True when name ("en_US.UTF-8", "de_DE.utf8@euro", "C.UTF-8") is C,
 * POSIX or C.UTF-8, or is in dir: a directory of that name, or an entry of
 * dir/locale-archive, as given or with its codeset normalised the way
 * glibc does ("UTF-8" -> "utf8").  A name with '/', a leading '.', control
 * characters or more than 127 bytes is never available.
 */
bool locale_available(const char *dir, const char *name);
