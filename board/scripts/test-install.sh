#!/usr/bin/env bash
# Tests install.sh against a small Raspberry-Pi-OS-shaped disk image built here: a DOS
# partition table (sfdisk) with a FAT boot partition and an ext4 root (mkfs), the root
# seeded with the bits of Raspberry Pi OS the installer relies on (/etc/passwd and /etc/group
# with the video and gpio groups, os-release). Then it checks files, modes, the kiosk user,
# the enabled unit, and runs `systemd-analyze verify` on the installed unit.
# Needs root (loop mounts). Usage: test-install.sh [KIOSK_BINARY]
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
deploy_config="$repo/board/deploy/config.json"
binary="${1:-$repo/target/cross/dist/kiosk}"
[[ -f "$binary" ]] || { echo "test-install: no kiosk binary at $binary (run cross.sh build)" >&2; exit 1; }
[[ $EUID -eq 0 ]] || { echo "test-install: needs root for loop mounts" >&2; exit 1; }

# Tools: sfdisk, mkfs.vfat, mkfs.ext4, mtools, systemd (sysusers, systemctl, analyze), file.
tools=(sfdisk:fdisk mkfs.vfat:dosfstools mkfs.ext4:e2fsprogs mcopy:mtools
    systemd-analyze:systemd file:file python3:python3 age-keygen:age openssl:openssl)
missing=()
for pair in "${tools[@]}"; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

work="$(mktemp -d)"
mounts=() loops=()
cleanup() {
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[i]}" || true; done
    for loop in "${loops[@]}"; do losetup -d "$loop" || true; done
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "test-install: FAIL: $*" >&2; exit 1; }

# --- a small image: 32 MiB FAT boot + ext4 root --------------------------------------
image="$work/raspios-test.img"
truncate -s 160M "$image"
printf 'label: dos\nstart=8192, size=65536, type=c\nstart=73728, type=83\n' | sfdisk -q "$image"
seed="$work/seed"
mkdir -p "$seed/etc/systemd/system" "$seed/usr/lib" "$seed/var/lib" "$seed/boot/firmware"
cat >"$seed/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/bash
pi:x:1000:1000:,,,:/home/pi:/bin/bash
PASSWD
cat >"$seed/etc/group" <<'GROUP'
root:x:0:
video:x:44:pi
gpio:x:997:pi
pi:x:1000:
GROUP
printf 'root:*::0:99999:7:::\npi:*::0:99999:7:::\n' >"$seed/etc/shadow"
printf 'root:*::\nvideo:!::pi\ngpio:!::pi\npi:!::\n' >"$seed/etc/gshadow"
chmod 0640 "$seed/etc/shadow" "$seed/etc/gshadow"
# The systemd units a Raspberry Pi OS root has (sysinit.target, …), from this machine's
# systemd (Debian bookworm's, the same version), so `systemd-analyze verify` can resolve them.
mkdir -p "$seed/usr/lib/systemd"
cp -a /usr/lib/systemd/system "$seed/usr/lib/systemd/"
printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_CODENAME=bookworm\n' \
    >"$seed/etc/os-release"

partition() { # image number -> "offset size" in bytes
    sfdisk -J "$1" | python3 -c '
import json, sys
p = json.load(sys.stdin)["partitiontable"]["partitions"][int(sys.argv[1]) - 1]
print(p["start"] * 512, p["size"] * 512)' "$2"
}
loop_of() { # image number -> loop device
    local offset size loop
    read -r offset size < <(partition "$1" "$2")
    loop="$(losetup -f --show -o "$offset" --sizelimit "$size" "$1")"
    loops+=("$loop")
    echo "$loop"
}
# FAT through mtools (vfat may not be mountable in a container); ext4 seeded by mke2fs -d.
read -r boot_offset boot_size < <(partition "$image" 1)
boot_image="$image@@$boot_offset"
mkfs.vfat -n BOOTFS --offset "$((boot_offset / 512))" "$image" "$((boot_size / 1024))" >/dev/null 2>&1
printf '# Raspberry Pi OS config.txt (test)\ndtparam=audio=on\n' >"$work/config.txt"
mcopy -i "$boot_image" "$work/config.txt" ::config.txt
root_loop="$(loop_of "$image" 2)"
mkfs.ext4 -q -L rootfs -d "$seed" "$root_loop"
losetup -d "$root_loop"
loops=()

# --- install ------------------------------------------------------------------------
# Without a recipient (and not on a terminal) the installer refuses, before touching the card.
if "$repo/board/scripts/install.sh" --image "$image" --binary "$binary" --desk-id desk-07 \
    </dev/null 2>"$work/refused.log"; then
    fail "install.sh installed a plaintext-video kiosk without --plaintext-video"
fi
grep -q -- "--encrypt-to" "$work/refused.log" || fail "the refusal does not say what to give: $(cat "$work/refused.log")"
echo "ok  no recipient, no install: $(tail -1 "$work/refused.log")"
age-keygen -o "$work/school-key.txt" 2>/dev/null
recipient="$(age-keygen -y "$work/school-key.txt")"
# The live class view's broker: a CA certificate (any will do here) and a password file.
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 30 \
    -subj "/CN=test CA" -keyout "$work/ca.key" -out "$work/broker-ca.pem" 2>/dev/null
echo "desk-07-password" >"$work/broker-password"
cat >"$work/timetable.json" <<'JSON'
[{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:30", "end": "09:15", "lesson_id": "maths-7b"},
 {"days": ["mon", "wed"], "start": "09:25", "end": "10:10", "lesson_id": "physics-7b"}]
JSON
"$repo/board/scripts/install.sh" --image "$image" --binary "$binary" --desk-id desk-07 \
    --encrypt-to "$recipient" --broker broker.school.lan:8883 --broker-ca "$work/broker-ca.pem" \
    --broker-password "$work/broker-password" --timetable "$work/timetable.json" | tee "$work/install.log"
# The installer ran the installed kiosk's own check on the card (under qemu here).
grep -Eq '^ *config +ok +valid' "$work/install.log" || fail "install.sh did not run kiosk check"
grep -Eq '^ *models +ok ' "$work/install.log" || fail "kiosk check did not probe the models"
echo "ok  install.sh verified the card with kiosk check --root"

# --- check --------------------------------------------------------------------------
root="$work/root"
mkdir -p "$root"
mount -o ro "$(loop_of "$image" 2)" "$root"
mounts+=("$root")

expect_mode() { # path mode
    [[ -e "$root$1" ]] || fail "$1 missing"
    local mode
    mode="$(stat -c '%a' "$root$1")"
    [[ "$mode" == "$2" ]] || fail "$1 has mode $mode, expected $2"
    echo "ok  $1 ($mode)"
}
expect_mode /usr/local/bin/kiosk 755
expect_mode /usr/share/ekspresi/models/lenet5-int8.onnx 644
expect_mode /usr/share/ekspresi/models/lenet5-fp32.onnx 644
expect_mode /usr/share/ekspresi/models/vgg-lite-fp32.onnx 644
expect_mode /usr/share/ekspresi/models/MODEL_CARD.md 644
expect_mode /usr/share/ekspresi/models/models.json 644
expect_mode /etc/ekspresi/config.json 644
expect_mode /etc/systemd/system/ekspresi-kiosk.service 644
expect_mode /etc/systemd/system/ekspresi-upload.service 644
expect_mode /etc/systemd/system/ekspresi-upload.timer 644
expect_mode /etc/systemd/system/ekspresi-publish.service 644
expect_mode /etc/ekspresi/broker-ca.pem 644
expect_mode /etc/ekspresi/broker-password 640
[[ "$(stat -c '%g' "$root/etc/ekspresi/broker-password")" == "$(awk -F: '$1 == "ekspresi" {print $3}' "$root/etc/group")" ]] ||
    fail "the broker password is not the kiosk group's"
expect_mode /usr/lib/sysusers.d/ekspresi.conf 644
cmp -s "$binary" "$root/usr/local/bin/kiosk" || fail "installed kiosk differs from $binary"
cmp -s "$repo/firmware/models/lenet5-int8.onnx" "$root/usr/share/ekspresi/models/lenet5-int8.onnx" ||
    fail "installed model differs"
cmp -s "$repo/firmware/models/models.json" "$root/usr/share/ekspresi/models/models.json" ||
    fail "installed models.json differs"

expect_mode /usr/share/ekspresi/INSTALLED.sha256 644
(cd "$root" && sha256sum --check --quiet usr/share/ekspresi/INSTALLED.sha256) ||
    fail "installed files do not match INSTALLED.sha256"
grep -q ' usr/local/bin/kiosk$' "$root/usr/share/ekspresi/INSTALLED.sha256" ||
    fail "INSTALLED.sha256 does not list the binary"
echo "ok  INSTALLED.sha256: $(wc -l <"$root/usr/share/ekspresi/INSTALLED.sha256") files, sha256sum -c passes"

wants="$root/etc/systemd/system/multi-user.target.wants/ekspresi-kiosk.service"
[[ -L "$wants" ]] || fail "ekspresi-kiosk.service is not enabled (no multi-user.target.wants link)"
[[ "$(readlink "$wants")" == /etc/systemd/system/ekspresi-kiosk.service ]] ||
    fail "enable link points to $(readlink "$wants")"
echo "ok  unit enabled (multi-user.target.wants)"
timer_link="$root/etc/systemd/system/timers.target.wants/ekspresi-upload.timer"
[[ "$(readlink "$timer_link" 2>/dev/null)" == /etc/systemd/system/ekspresi-upload.timer ]] ||
    fail "ekspresi-upload.timer is not enabled (no timers.target.wants link)"
echo "ok  upload timer enabled (timers.target.wants)"
publish_link="$root/etc/systemd/system/multi-user.target.wants/ekspresi-publish.service"
[[ "$(readlink "$publish_link" 2>/dev/null)" == /etc/systemd/system/ekspresi-publish.service ]] ||
    fail "ekspresi-publish.service is not enabled though --broker was given"
echo "ok  publish unit enabled (--broker)"
# The process that sees the camera has no network; only the upload unit has.
grep -q '^PrivateNetwork=yes$' "$root/etc/systemd/system/ekspresi-kiosk.service" ||
    fail "the kiosk unit lost PrivateNetwork=yes"
! grep -q '^PrivateNetwork=yes$' "$root/etc/systemd/system/ekspresi-upload.service" ||
    fail "the upload unit cannot reach the network"
! grep -q 'kiosk run' "$root/etc/systemd/system/ekspresi-upload.service" ||
    fail "the upload unit runs the camera service"
! grep -q '^PrivateNetwork=yes$' "$root/etc/systemd/system/ekspresi-publish.service" ||
    fail "the publish unit cannot reach the broker"
grep -q '^ExecStart=/usr/local/bin/kiosk publish ' "$root/etc/systemd/system/ekspresi-publish.service" ||
    fail "the publish unit does not run kiosk publish"
echo "ok  camera service: PrivateNetwork=yes; upload and publish services: network, no camera"

python3 - "$root/etc/ekspresi/config.json" "$recipient" <<'PY' || fail "config.json"
import json, sys
config = json.load(open(sys.argv[1]))
assert config["desk_id"] == "desk-07", config["desk_id"]
assert config["data_dir"] == "/var/lib/ekspresi"
assert config["encrypt_to"] == [sys.argv[2]], config.get("encrypt_to")
assert config["publish"] == {"broker": "broker.school.lan:8883", "ca": "/etc/ekspresi/broker-ca.pem",
                             "password_file": "/etc/ekspresi/broker-password"}, config.get("publish")
assert [l["lesson_id"] for l in config["timetable"]] == ["maths-7b", "physics-7b"], config.get("timetable")
print("ok  config.json: desk_id desk-07, data_dir /var/lib/ekspresi, video encrypted to the school's key, publish to the broker, a timetable of 2 lessons")
PY

grep -q '^ekspresi:' "$root/etc/passwd" || fail "no ekspresi user in /etc/passwd"
grep -q '^ekspresi:.*:/usr/sbin/nologin$' "$root/etc/passwd" || fail "ekspresi user has a login shell"
for group in video gpio; do
    grep -Eq "^$group:[^:]*:[0-9]+:(.*,)?ekspresi(,|$)" "$root/etc/group" ||
        fail "ekspresi is not in group $group"
done
echo "ok  user ekspresi (nologin) in groups video, gpio"

mtype -i "$boot_image" ::config.txt | grep -q '^camera_auto_detect=1' ||
    fail "camera_auto_detect not set in the boot partition's config.txt"
echo "ok  boot config.txt: camera_auto_detect=1"

verify_log="$work/verify.log"
for unit in ekspresi-kiosk.service ekspresi-upload.service ekspresi-upload.timer ekspresi-publish.service; do
    if ! systemd-analyze verify --root="$root" "/etc/systemd/system/$unit" >"$verify_log" 2>&1; then
        cat "$verify_log" >&2
        fail "systemd-analyze verify rejected $unit"
    fi
    # verify exits 0 on many problems (an unknown Type= is only "ignoring"): any output fails.
    if [[ -s "$verify_log" ]]; then
        cat "$verify_log" >&2
        fail "systemd-analyze verify complained about $unit"
    fi
    echo "ok  systemd-analyze verify accepts $unit (no warnings)"
done

# A config the kiosk would refuse is caught at install, not at the desk's first boot.
umount "$root"
mounts=()
for loop in "${loops[@]}"; do losetup -d "$loop" || true; done
loops=()
python3 - "$deploy_config" "$work/bad-config.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["camera"]["fps"] = 0
json.dump(config, open(sys.argv[2], "w"))
PY
if "$repo/board/scripts/install.sh" --image "$image" --binary "$binary" \
    --config "$work/bad-config.json" --encrypt-to "$recipient" >/dev/null 2>"$work/bad.log"; then
    fail "install.sh accepted a config with camera.fps 0"
fi
grep -q "camera.fps" "$work/bad.log" || fail "the refusal does not name the field: $(cat "$work/bad.log")"
grep -q "kiosk check rejects it" "$work/bad.log" || fail "the refusal does not say what failed"
echo "ok  a bad config is refused at install: $(grep -m1 camera.fps "$work/bad.log")"
# A timetable whose lessons overlap is refused by the same check.
cat >"$work/overlapping.json" <<'JSON'
[{"days": ["mon"], "start": "08:30", "end": "09:15", "lesson_id": "maths-7b"},
 {"days": ["mon"], "start": "09:00", "end": "09:45", "lesson_id": "physics-7b"}]
JSON
if "$repo/board/scripts/install.sh" --image "$image" --binary "$binary" --encrypt-to "$recipient" \
    --config "$deploy_config" --timetable "$work/overlapping.json" >/dev/null 2>"$work/overlap.log"; then
    fail "install.sh accepted a timetable whose lessons overlap"
fi
grep -q "overlap" "$work/overlap.log" || fail "the refusal does not say the lessons overlap: $(cat "$work/overlap.log")"
echo "ok  an overlapping timetable is refused at install: $(grep -m1 overlap "$work/overlap.log")"

echo "install-script test passed"
