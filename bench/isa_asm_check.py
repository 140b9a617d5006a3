"""Which vector registers each ISA variant of the CountSketch and gd kernels uses, from the disassembly.

The installed ``_core`` is stripped, so this links the build folder's objects once more without
stripping (the link command of build.ninja, minus its strip step), disassembles it with objdump and
sums, per kernel instantiation and variant (``detail::isa_v4`` / ``isa_v3`` / ``isa_base``, or the
``.arch_x86_64_v4`` / ``.arch_x86_64_v3`` / ``.default`` clones of a target_clones build), the zmm, ymm
and FMA operands of the kernel and of its OpenMP-outlined regions (``._omp_fn.N``, which must carry the
variant's ISA too). Exits 1 when a v3 variant touches zmm or a baseline one touches ymm, zmm or FMA.

    python bench/isa_asm_check.py build/cp311-cp311-linux_x86_64
    python bench/isa_asm_check.py --asm old.asm   # an existing `objdump -d -C` listing
"""

import argparse
import collections
import os
import re
import shlex
import subprocess
import tempfile


def _unstripped_listing(build_dir: str) -> str:
    so = next(f for f in os.listdir(build_dir) if f.startswith("_core") and f.endswith(".so"))
    # the link command (the last of the target's), without its "&& ... strip" tail, writing elsewhere
    command = subprocess.run(["ninja", "-C", build_dir, "-t", "commands", so], check=True, capture_output=True,
                             text=True).stdout.strip().splitlines()[-1]
    link = shlex.split(command.lstrip(": &").split(" && ")[0])
    out = os.path.join(tempfile.mkdtemp(), "_core_unstripped.so")
    link[link.index("-o") + 1] = out
    subprocess.run(link, cwd=build_dir, check=True)
    return subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", out], check=True, capture_output=True,
                          text=True).stdout


def _variants(listing: str):
    """{(kernel, variant): [zmm, ymm, fma, functions, outlined]} over every function of the listing."""
    rows = collections.defaultdict(lambda: [0, 0, 0, 0, 0])
    name, body = None, []

    def flush():
        if name is None or "@plt" in name or "resolver" in name:
            return
        m = re.search(r"(?:isa_(v4|v3|base)::|fastlr::detail::)(\w+_impl)<?([^(]*?)>?\(", name)
        if m is None:
            return
        variant = m.group(1)
        if variant is None:  # a target_clones build
            clone = re.search(r"\.arch_x86_64_(v4|v3)|\.default", name)
            if clone is None:
                return
            variant = clone.group(1) or "base"
        text = "".join(body)
        r = rows[m.group(2) + "<" + m.group(3).replace("fastlr::detail::", "").replace(" ", "") + ">", variant]
        r[0] += text.count("%zmm")
        r[1] += text.count("%ymm")
        r[2] += len(re.findall(r"\bvfn?m(?:add|sub)", text))
        r[3] += 1
        r[4] += "._omp_fn." in name

    for line in listing.splitlines():
        head = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if head:
            flush()
            name, body = head.group(1), []
        elif name is not None:
            body.append(line + "\n")
    flush()
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir", nargs="?", help="scikit-build's build folder (with build.ninja)")
    parser.add_argument("--asm", help="read this objdump -d -C listing instead of linking")
    args = parser.parse_args(argv)
    if args.asm:
        with open(args.asm) as f:
            listing = f.read()
    elif args.build_dir:
        listing = _unstripped_listing(args.build_dir)
    else:
        parser.error("give a build folder or --asm")
    bad = 0
    print("| kernel | variant | zmm | ymm | fma | functions (outlined) |\n|---|---|---|---|---|---|")
    for (kernel, variant), (z, y, f, n, omp) in sorted(_variants(listing).items()):
        wrong = (variant == "v3" and z) or (variant == "base" and (z or y or f))
        bad += bool(wrong)
        print(f"| {kernel} | {variant} | {z} | {y} | {f} | {n} ({omp}){' WRONG ISA' if wrong else ''} |")
    print(f"\n{bad} variants use registers beyond their ISA")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
