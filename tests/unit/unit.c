/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include <CUnit/Basic.h>

#include "unit.h"

int unit_run(CU_SuiteInfo *suites)
{
	unsigned int failures, tests_failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	if (CU_register_suites(suites) != CUE_SUCCESS) {
		fprintf(stderr, "cannot register suites: %s\n", CU_get_error_msg());
		CU_cleanup_registry();
		return 99;
	}

	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (CU_basic_run_tests() != CUE_SUCCESS) {
		fprintf(stderr, "CUnit error: %s\n", CU_get_error_msg());
		CU_cleanup_registry();
		return 99;
	}

	failures = CU_get_number_of_failures();
	tests_failed = CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failures || tests_failed ? 1 : 0;
}
