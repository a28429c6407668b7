/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CRC-32C (Castagnoli), the checksum of every dm persistent-data block.
 *
 * A delta checksums every block it reads, so the checksum shows in a
 * large walk. On x86-64 with SSE4.2 the crc32 instruction computes this
 * very polynomial, eight bytes at a time; the choice is made once, at
 * load time. Elsewhere, slicing-by-8: eight 256-entry tables fold eight
 * input bytes per step.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "base.h"
#include "metadata.h"

#define CRC32C_POLY_REFLECTED 0x82f63b78u

static uint32_t crc_table[8][256];

static uint32_t (*crc32c_impl)(uint32_t crc, const void *data, size_t len);

static uint32_t load_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint32_t crc32c_fold8(uint32_t crc, const uint8_t *p)
{
	uint32_t lo = load_le32(p) ^ crc;
	uint32_t hi = load_le32(p + 4);

	return crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
	       crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
	       crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
	       crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
}

uint32_t dmrepl_crc32c_sw(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (; len >= 8; len -= 8, p += 8)
		crc = crc32c_fold8(crc, p);
	for (; len > 0; len--, p++)
		crc = (crc >> 8) ^ crc_table[0][(crc ^ *p) & 0xff];
	return crc;
}

#if defined(__x86_64__)
#define HAVE_CRC32C_HW 1

__attribute__((target("sse4.2"))) static uint32_t
crc32c_sse42(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t c = crc;

	for (; len >= 8; len -= 8, p += 8) {
		uint64_t v;

		memcpy(&v, p, sizeof(v));
		c = __builtin_ia32_crc32di(c, v);
	}
	for (; len > 0; len--, p++)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p);
	return (uint32_t)c;
}

bool dmrepl_crc32c_hw_supported(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("sse4.2");
}
#else
#define HAVE_CRC32C_HW 0

bool dmrepl_crc32c_hw_supported(void)
{
	return false;
}
#endif

uint32_t dmrepl_crc32c_hw(uint32_t crc, const void *data, size_t len)
{
#if HAVE_CRC32C_HW
	if (dmrepl_crc32c_hw_supported())
		return crc32c_sse42(crc, data, len);
#endif
	return dmrepl_crc32c_sw(crc, data, len);
}

/* Runs at load time, so no caller ever sees a half-built table. */
__attribute__((constructor)) static void crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t crc = i;

		for (int bit = 0; bit < 8; bit++)
			crc =
			    (crc >> 1) ^ (crc & 1 ? CRC32C_POLY_REFLECTED : 0);
		crc_table[0][i] = crc;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] =
			    (crc_table[t - 1][i] >> 8) ^
			    crc_table[0][crc_table[t - 1][i] & 0xff];
	crc32c_impl = dmrepl_crc32c_sw;
#if HAVE_CRC32C_HW
	if (dmrepl_crc32c_hw_supported())
		crc32c_impl = crc32c_sse42;
#endif
}

uint32_t dmrepl_crc32c(uint32_t crc, const void *data, size_t len)
{
	return crc32c_impl(crc, data, len);
}
