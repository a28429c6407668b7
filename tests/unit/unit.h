/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef DMREPL_UNIT_H
#define DMREPL_UNIT_H

#include <CUnit/CUnit.h>

/*
 * Register @suites, run them with the basic interface and return the
 * process exit status: 0 when every assertion passed, 1 when any failed
 * (CU_get_error() only reports framework errors, not failed assertions),
 * 99 when the framework itself failed.
 */
int unit_run(CU_SuiteInfo *suites);

#endif
