/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Every internal interface of libdmrepl, for its tools and tests (which
 * link the non-installed libdmrepl-internal.la). The library's own files
 * include the layers' headers they use.
 */
#ifndef LIBDMREPL_PRIVATE_H
#define LIBDMREPL_PRIVATE_H

#include "base.h"
#include "metadata.h"
#include "dm.h"
#include "lvm.h"
#include "replication.h"
#include "io.h"
#include "source.h"

#endif /* LIBDMREPL_PRIVATE_H */
