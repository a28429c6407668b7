#!/bin/sh
# The bash completion (completion/dmrepl): subcommands, each
# subcommand's options as its --help lists them, fixed values, and thin
# volumes and pools by LVM name. lvs is a stand-in here that prints a
# fixed listing: this tests the completion's reading of it, not LVM.
set -u

DMREPL=${DMREPL:-tools/dmrepl}
. "${top_srcdir:-.}/tests/tool/expect.sh"
command -v bash >/dev/null 2>&1 || { echo "SKIP: bash not found"; exit 77; }

mkdir -p "$tmp/bin"
ln -s "$DMREPL" "$tmp/bin/dmrepl"
cat > "$tmp/bin/lvs" <<'EOS'
#!/bin/sh
printf '  %s %s %s\n' vg0 pool thin-pool vg0 vol1 thin vg0 vol1-mon thin \
	vg1 pool thin-pool vg1 lin linear
EOS
cat > "$tmp/bin/dmsetup" <<'EOS'
#!/bin/sh
echo "tank-tpool	(254:3)"
EOS
chmod +x "$tmp/bin/lvs" "$tmp/bin/dmsetup"

# complete WORDS...: the completions of the last word, one a line
complete_words() {
	PATH="$tmp/bin:$PATH" bash -c '
		. "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		_dmrepl
		printf "%s\n" "${COMPREPLY[@]}"' sh "${top_srcdir:-.}/completion/dmrepl" "$@"
}

has() {	# NAME WANT WORDS...: the completions of WORDS include WANT
	name=$1 want=$2
	shift 2
	check "$name" sh -c 'printf "%s\n" "$1" | grep -qx -- "$2"' sh "$(complete_words "$@")" "$want"
}
hasnt() {
	name=$1 want=$2
	shift 2
	check "$name" sh -c '! printf "%s\n" "$1" | grep -qx -- "$2"' sh "$(complete_words "$@")" "$want"
}

has "subcommand: replicate"      replicate   dmrepl rep
has "subcommand: replicas"       replicas    dmrepl rep
hasnt "subcommand: not recover"  recover     dmrepl rep
has "after -v, a subcommand"     snapshot    dmrepl -v sn
has "global option"              --version   dmrepl --ver
has "replicate's --to-pool"      --to-pool   dmrepl replicate --to-p
has "replicate's --dry-run"      --dry-run   dmrepl replicate --dry
has "send's --checkpoint"        --checkpoint dmrepl send --check
hasnt "send has no --to-pool"    --to-pool   dmrepl send --to-p
has "-v in any subcommand"       --verbose   dmrepl ls --verb
has "-n in any subcommand"       --dry-run   dmrepl ls --dry
has "-n before the subcommand"   --dry-run   dmrepl --dry
has "send's --json"              --json      dmrepl send --js
: >"$tmp/stream.out"
has "send --output: a file"      "$tmp/stream.out" dmrepl send --output "$tmp/stream."
has "--snap: a thin LV"          vg0/vol1-mon dmrepl replicate --snap vg0/
hasnt "--snap: not a pool"       vg0/pool    dmrepl replicate --snap vg0/
has "--to-pool: an LVM pool"     vg1/pool    dmrepl replicate --snap vg0/vol1 --to-pool vg
hasnt "--to-pool: not a linear LV" vg1/lin   dmrepl replicate --to-pool vg
has "--pool: a raw pool"         tank-tpool  dmrepl ls --pool t
has "--engine values"            uring       dmrepl copy --engine u
has "--format values"            extents     dmrepl delta --format e
has "help SUBCOMMAND"            receive     dmrepl help rec

mkdir -p "$tmp/conf/jobs.d"
: >"$tmp/conf/jobs.d/nightly.conf"
: >"$tmp/conf/jobs.d/hourly.conf"
: >"$tmp/conf/jobs.d/notes.txt"
has "sync JOB: a configured job"  nightly     dmrepl sync -c "$tmp/conf" n
hasnt "sync JOB: not another file" notes      dmrepl sync -c "$tmp/conf" no
has "prune JOB"                  hourly      dmrepl prune --config "$tmp/conf" h
has "sync --from: a thin LV"     vg0/vol1    dmrepl sync --from vg0/v
has "sync's --keep-destination"  --keep-destination dmrepl sync --keep-d

expect_done
