#!/bin/sh
# Regenerate the seed corpus of fuzz-metadata: small thin_restore images
# cut after their last used block, plus patched variants (a held metadata
# snapshot, internal nodes above the top-level trees, a 16-level tree, a
# cycle, and two devices sharing one mapping tree). Needs
# thin_restore and python3; the seeds are committed, so this only runs
# when they should change.
#
#   tests/fuzz/make-seeds.sh [stream]
#
# "stream" regenerates only fuzz-stream's seeds (corpus-stream/), written
# by make-stream-seeds.c with the stream writer; it needs cc, libzstd-dev
# and libxxhash-dev, not thin_restore.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

stream_seeds() {
	gen=$(mktemp -d)
	printf '#define PACKAGE_VERSION "seeds"\n' >"$gen/config.h"
	${CC:-cc} -O1 -D_GNU_SOURCE -include "$gen/config.h" -I"$gen" -I"$top/lib" \
		"$here/make-stream-seeds.c" "$top/lib/stream.c" "$top/lib/ratelimit.c" \
		"$top/lib/context.c" -lzstd -lxxhash -o "$gen/make-stream-seeds"
	mkdir -p "$here/corpus-stream"
	"$gen/make-stream-seeds" "$here/corpus-stream"
	rm -rf "$gen"
	ls -l "$here/corpus-stream"
}
if [ "${1:-}" = stream ]; then
	stream_seeds
	exit 0
fi
seeds=$here/corpus-metadata
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

restore() {	# restore XML OUT
	rm -f "$2" && truncate -s 1M "$2" && thin_restore -q -i "$1" -o "$2"
}

cat >"$tmp/two-level.xml" <<'XML'
<superblock uuid="" time="1" transaction="1" data_block_size="128" nr_data_blocks="2048">
  <device dev_id="1" mapped_blocks="600" transaction="0" creation_time="0" snap_time="1">
    <range_mapping origin_begin="0" data_begin="0" length="600" time="0"/>
  </device>
  <device dev_id="2" mapped_blocks="600" transaction="1" creation_time="1" snap_time="1">
    <range_mapping origin_begin="0" data_begin="0" length="300" time="0"/>
    <range_mapping origin_begin="300" data_begin="1000" length="5" time="1"/>
    <range_mapping origin_begin="305" data_begin="305" length="295" time="0"/>
  </device>
</superblock>
XML

restore "$here/../fixtures/small.xml" "$tmp/small"
restore "$here/../fixtures/edge.xml" "$tmp/edge"
restore "$tmp/two-level.xml" "$tmp/two-level"

python3 - "$tmp" "$seeds" <<'PY'
import struct, sys
tmp, seeds = sys.argv[1], sys.argv[2]
B = 4096

def crc32c(data, crc=0xffffffff):
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc

def reseal(img, block, xor):
    b = block * B
    struct.pack_into('<I', img, b, crc32c(img[b + 4:b + B]) ^ xor)

def trim(img):
    used = max(i for i in range(len(img) // B) if any(img[i * B:(i + 1) * B]))
    return img[:(used + 1) * B]

def load(name):
    return bytearray(open(f'{tmp}/{name}', 'rb').read())

def save(name, img):
    open(f'{seeds}/{name}', 'wb').write(bytes(img))

for name in ('small', 'edge', 'two-level'):
    save(name, trim(load(name)))

# A held snapshot: a superblock copy after the last used block.
img = trim(load('small'))
held = len(img) // B
img += bytes(img[:B])
struct.pack_into('<Q', img, held * B + 8, held)
img[held * B + 64:held * B + 320] = bytes(256)
reseal(img, held, 160774)
struct.pack_into('<Q', img, 56, held)
reseal(img, 0, 160774)
save('small-held-root', img)

def internal(img, keys, children):
    """Append an internal node; return its block number."""
    block = len(img) // B
    node = bytearray(B)
    struct.pack_into('<IQIII', node, 4, 1, block, len(keys), 252, 8)
    for i, (k, c) in enumerate(zip(keys, children)):
        struct.pack_into('<Q', node, 32 + 8 * i, k)
        struct.pack_into('<Q', node, 32 + 8 * 252 + 8 * i, c)
    img += node
    reseal(img, block, 121107)
    return block

def top_leaf(img):
    top = struct.unpack_from('<Q', img, 320)[0] * B
    nr, mx = struct.unpack_from('<II', img, top + 16)
    return top, top + 32 + 8 * mx

# Internal nodes above the top-level and device-details leaves, so that
# lookups descend.
img = trim(load('two-level'))
for off in (320, 328):
    struct.pack_into('<Q', img, off,
                     internal(img, [0], [struct.unpack_from('<Q', img, off)[0]]))
reseal(img, 0, 160774)
save('two-level-inner', img)

# Device 2's mapping tree under a chain of 14 one-entry nodes: 16 levels.
img = trim(load('two-level'))
top, vals = top_leaf(img)
child = struct.unpack_from('<Q', img, vals + 8)[0]
for _ in range(14):
    child = internal(img, [0], [child])
struct.pack_into('<Q', img, vals + 8, child)
reseal(img, top // B, 121107)
save('two-level-chain', img)

# Device 2's root also appears as its own second child: a cycle.
img = trim(load('two-level'))
top, vals = top_leaf(img)
root2 = struct.unpack_from('<Q', img, vals + 8)[0] * B
mx = struct.unpack_from('<I', img, root2 + 20)[0]
struct.pack_into('<Q', img, root2 + 32 + 8 * mx + 8, root2 // B)
reseal(img, root2 // B, 121107)
save('two-level-cycle', img)

# Device 2 shares device 1's mapping tree.
img = trim(load('two-level'))
top = struct.unpack_from('<Q', img, 320)[0] * B
nr, mx = struct.unpack_from('<II', img, top + 16)
vals = top + 32 + 8 * mx
root1 = struct.unpack_from('<Q', img, vals)[0]
struct.pack_into('<Q', img, vals + 8, root1)
reseal(img, top // B, 121107)
save('two-level-shared', img)
PY
ls -l "$seeds"
stream_seeds
