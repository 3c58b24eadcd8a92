#!/usr/bin/env bash
# Installs the Ekspresi kiosk into a Raspberry Pi OS system: binary, model, config, the
# systemd unit (enabled) and the kiosk user. The target is either a mounted SD card's root
# file system (--root) or a whole Raspberry Pi OS image file (--image; needs root, mounts
# its root partition through a loop device and edits its FAT boot partition with mtools).
#
#   board/scripts/install.sh --image raspios.img --binary target/cross/dist/kiosk --desk-id desk-07 --encrypt-to age1...
#   board/scripts/install.sh --root /media/$USER/rootfs --boot /media/$USER/bootfs --binary kiosk --desk-id desk-07 --encrypt-to age1...
#
# The video is encrypted to the school's age public key(s) (--encrypt-to, repeatable; asked
# for on a terminal); it is written in the clear only with --plaintext-video. An existing
# /etc/ekspresi/config.json is kept (only desk_id and recipients are set when given), so a
# re-install never loses a desk's settings. What was installed is then verified with the
# kiosk itself (`kiosk check --root`: the config and every model; under qemu-user on a
# non-ARM machine); --no-check skips that, knowingly.
#
# The live class view (optional): --broker HOST:PORT --broker-ca CA.pem --broker-password FILE
# (from board/deploy/broker/add-desk.sh) install the school's CA and this desk's broker
# password under /etc/ekspresi, set `publish` in the config and enable ekspresi-publish.service.
# --timetable FILE (a JSON list of {"days", "start", "end", "lesson_id"}: the school's bell
# schedule) makes the camera run only during those lessons; kiosk check verifies it.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
deploy="$repo/board/deploy"

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

root="" boot="" image="" binary="" desk_id="" config="" plaintext_video="" no_check=""
broker="" broker_ca="" broker_password="" timetable=""
recipients=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --root) root="$2"; shift 2 ;;
        --boot) boot="$2"; shift 2 ;;
        --image) image="$2"; shift 2 ;;
        --binary) binary="$2"; shift 2 ;;
        --desk-id) desk_id="$2"; shift 2 ;;
        --config) config="$2"; shift 2 ;;
        --encrypt-to) recipients+=("$2"); shift 2 ;;
        --plaintext-video) plaintext_video=1; shift ;;
        --no-check) no_check=1; shift ;;
        --broker) broker="$2"; shift 2 ;;
        --broker-ca) broker_ca="$2"; shift 2 ;;
        --broker-password) broker_password="$2"; shift 2 ;;
        --timetable) timetable="$2"; shift 2 ;;
        -h|--help) usage ;;
        *) echo "install.sh: unknown argument $1" >&2; usage ;;
    esac
done

die() { echo "install.sh: $*" >&2; exit 1; }

[[ -n "$binary" ]] || die "--binary PATH is required (the aarch64 kiosk from board/scripts/cross.sh build)"
[[ -f "$binary" ]] || die "no binary at $binary"
[[ -n "$root" || -n "$image" ]] || die "give --root DIR (mounted SD card) or --image FILE"
if [[ -n "$desk_id" && ! "$desk_id" =~ ^[A-Za-z0-9_-]+$ ]]; then
    die "--desk-id: use letters, digits, - or _ (it names a folder)"
fi
for recipient in "${recipients[@]}"; do
    [[ "$recipient" =~ ^age1[02-9ac-hj-np-z]{58}$ ]] ||
        die "--encrypt-to: $recipient is not an age X25519 public key (age1 and 58 more characters; age-keygen -y KEY prints it)"
done
[[ -z "$plaintext_video" || ${#recipients[@]} -eq 0 ]] || die "--plaintext-video and --encrypt-to contradict each other"
if [[ -n "$timetable" ]]; then
    python3 -c 'import json, sys; t = json.load(open(sys.argv[1])); assert isinstance(t, list)' "$timetable" 2>/dev/null ||
        die "--timetable: $timetable is not a JSON list of lessons"
fi
if [[ -n "$broker$broker_ca$broker_password" ]]; then
    [[ -n "$broker" && -n "$broker_ca" && -n "$broker_password" ]] ||
        die "the live class view needs all three: --broker HOST:PORT --broker-ca FILE --broker-password FILE"
    [[ "$broker" =~ ^[A-Za-z0-9.-]+:[0-9]{1,5}$ ]] || die "--broker: expected host:port, got $broker"
    grep -q -- "-----BEGIN CERTIFICATE-----" "$broker_ca" 2>/dev/null ||
        die "--broker-ca: $broker_ca is not a PEM certificate"
    [[ -s "$broker_password" ]] || die "--broker-password: $broker_password is empty or missing"
fi
if command -v file >/dev/null && ! file -b "$binary" | grep -q "ARM aarch64"; then
    echo "install.sh: warning: $binary is not an aarch64 binary: $(file -b "$binary")" >&2
fi

mounts=() loops=()
cleanup() {
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[i]}" || true; done
    for loop in "${loops[@]}"; do losetup -d "$loop" || true; done
    [[ -n "${workdir:-}" ]] && rm -rf "$workdir"
}
trap cleanup EXIT

# Byte offset of partition $2 (1-based) of image $1.
partition_offset() {
    sfdisk -J "$1" | python3 -c '
import json, sys
print(json.load(sys.stdin)["partitiontable"]["partitions"][int(sys.argv[1]) - 1]["start"] * 512)' "$2"
}

# Mounts partition $2 (1-based) of image $1 at $3 via an offset loop device (no udev needed).
mount_partition() {
    local img="$1" number="$2" dir="$3" start size loop
    read -r start size < <(sfdisk -J "$img" | python3 -c '
import json, sys
table = json.load(sys.stdin)["partitiontable"]
part = table["partitions"][int(sys.argv[1]) - 1]
print(part["start"] * 512, part["size"] * 512)' "$number") || die "$img has no partition $number"
    loop="$(losetup -f --show -o "$start" --sizelimit "$size" "$img")"
    loops+=("$loop")
    mkdir -p "$dir"
    mount "$loop" "$dir"
    mounts+=("$dir")
}

boot_image="" # "IMAGE@@OFFSET" for mtools when the boot partition is not mounted
if [[ -n "$image" ]]; then
    [[ $EUID -eq 0 ]] || die "--image needs root (loop mounts)"
    [[ -f "$image" ]] || die "no image at $image"
    command -v mcopy >/dev/null || die "--image needs mtools (apt install mtools)"
    workdir="$(mktemp -d)"
    mount_partition "$image" 2 "$workdir/root"
    root="$workdir/root"
    boot_image="$image@@$(partition_offset "$image" 1)"
fi
[[ -d "$root/etc" ]] || die "$root does not look like a root file system (no etc/)"

# Video at rest: encrypted to the school's recipients, or in the clear only when told so.
# Decided before anything is installed, so a refusal leaves the card as it was.
recipients_in() { # config.json -> how many encrypt_to recipients it has
    python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1])).get("encrypt_to", [])))' "$1"
}
config_file="$root/etc/ekspresi/config.json"
config_source="${config:-$config_file}"
existing_recipients=0
[[ -f "$config_source" ]] && existing_recipients="$(recipients_in "$config_source")"
if [[ ${#recipients[@]} -eq 0 && -z "$plaintext_video" && "$existing_recipients" == 0 ]]; then
    if [[ -t 0 ]]; then
        read -r -p "The school's age public key for the video (age1..., or 'plaintext'): " answer
        case "$answer" in
            plaintext) plaintext_video=1 ;;
            age1*) [[ "$answer" =~ ^age1[02-9ac-hj-np-z]{58}$ ]] || die "$answer is not an age public key"
                recipients+=("$answer") ;;
            *) die "no recipient given; nothing installed for the video's key" ;;
        esac
    else
        die "the video would be written in the clear: give --encrypt-to age1... (the school's age public key) or, knowingly, --plaintext-video"
    fi
fi
echo "installing into $root"
install -D -m 0755 "$binary" "$root/usr/local/bin/kiosk"
# Every model models.json lists, and the manifest itself (the kiosk picks models by name).
models_dir="$root/usr/share/ekspresi/models"
install -D -m 0644 "$repo/firmware/models/models.json" "$models_dir/models.json"
for file in $(grep -o '"file": *"[^"]*"' "$repo/firmware/models/models.json" | sed 's/.*"\([^"]*\)"$/\1/'); do
  install -D -m 0644 "$repo/$file" "$models_dir/$(basename "$file")"
  # Its fp32 twin too: `kiosk check` times both on the Pi's own cores (issue 30).
  twin="${file%-int8.onnx}-fp32.onnx"
  if [ "$twin" != "$file" ] && [ -f "$repo/$twin" ]; then
    install -D -m 0644 "$repo/$twin" "$models_dir/$(basename "$twin")"
  fi
done
install -D -m 0644 "$repo/firmware/models/MODEL_CARD.md" "$root/usr/share/ekspresi/models/MODEL_CARD.md"
install -D -m 0644 "$repo/board/README.md" "$root/usr/share/doc/ekspresi/README.md"
install -D -m 0644 "$deploy/PINMAP.md" "$root/usr/share/doc/ekspresi/PINMAP.md"
install -D -m 0644 "$deploy/ekspresi-kiosk.service" "$root/etc/systemd/system/ekspresi-kiosk.service"
install -D -m 0644 "$deploy/ekspresi-upload.service" "$root/etc/systemd/system/ekspresi-upload.service"
install -D -m 0644 "$deploy/ekspresi-upload.timer" "$root/etc/systemd/system/ekspresi-upload.timer"
install -D -m 0644 "$deploy/ekspresi-publish.service" "$root/etc/systemd/system/ekspresi-publish.service"
install -D -m 0644 "$deploy/ekspresi.sysusers" "$root/usr/lib/sysusers.d/ekspresi.conf"

if [[ -n "$config" ]]; then
    install -D -m 0644 "$config" "$config_file"
elif [[ ! -f "$config_file" ]]; then
    install -D -m 0644 "$deploy/config.json" "$config_file"
else
    echo "keeping the existing $config_file"
fi
python3 - "$config_file" "$desk_id" "$broker" "$timetable" "${recipients[@]}" <<'PY'
import json, os, sys
path, desk, broker, timetable, recipients = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
with open(path) as f:
    config = json.load(f)
if desk:
    config["desk_id"] = desk
if recipients:
    config["encrypt_to"] = recipients
if timetable:
    with open(timetable) as f:
        config["timetable"] = json.load(f)
if broker:
    config["publish"] = {
        "broker": broker,
        "ca": "/etc/ekspresi/broker-ca.pem",
        "password_file": "/etc/ekspresi/broker-password",
    }
with open(path + ".tmp", "w") as f:
    json.dump(config, f, indent=2)
    f.write("\n")
os.replace(path + ".tmp", path)
PY
if [[ -n "$plaintext_video" ]]; then
    echo "install.sh: warning: --plaintext-video: this desk's video is written unencrypted" >&2
else
    echo "video encrypted to $(recipients_in "$config_file") age recipient(s)"
fi

# The kiosk user now (systemd-sysusers also creates it at first boot if this step is skipped).
if command -v systemd-sysusers >/dev/null; then
    systemd-sysusers --root="$root" ekspresi.conf
fi

# The broker's CA and this desk's password: the password readable by the kiosk user only.
if [[ -n "$broker" ]]; then
    install -D -m 0644 "$broker_ca" "$root/etc/ekspresi/broker-ca.pem"
    install -D -m 0640 "$broker_password" "$root/etc/ekspresi/broker-password"
    gid="$(awk -F: '$1 == "ekspresi" {print $3}' "$root/etc/group")"
    [[ -n "$gid" ]] && chgrp "$gid" "$root/etc/ekspresi/broker-password"
fi

# Enable the units: what `systemctl enable` does, done offline. The upload timer does
# nothing until the config has an upload.to; the publish unit is enabled with --broker.
units=(ekspresi-kiosk.service ekspresi-upload.timer)
[[ -n "$broker" ]] && units+=(ekspresi-publish.service)
if command -v systemctl >/dev/null; then
    systemctl --root="$root" enable "${units[@]}"
else
    mkdir -p "$root/etc/systemd/system/multi-user.target.wants" "$root/etc/systemd/system/timers.target.wants"
    ln -sf /etc/systemd/system/ekspresi-kiosk.service \
        "$root/etc/systemd/system/multi-user.target.wants/ekspresi-kiosk.service"
    ln -sf /etc/systemd/system/ekspresi-upload.timer \
        "$root/etc/systemd/system/timers.target.wants/ekspresi-upload.timer"
    if [[ -n "$broker" ]]; then
        ln -sf /etc/systemd/system/ekspresi-publish.service \
            "$root/etc/systemd/system/multi-user.target.wants/ekspresi-publish.service"
    fi
fi

# The camera module needs the firmware's camera auto-detection (on by default in bookworm).
enable_camera() { # config.txt path
    if ! grep -q '^camera_auto_detect=1' "$1"; then
        echo "camera_auto_detect=1" >>"$1"
        echo "enabled camera_auto_detect in the boot partition's config.txt"
    fi
}
if [[ -n "$boot_image" ]]; then
    boot_config="$workdir/config.txt"
    if mcopy -n -i "$boot_image" ::config.txt "$boot_config" 2>/dev/null; then
        enable_camera "$boot_config"
        mcopy -o -i "$boot_image" "$boot_config" ::config.txt
    else
        echo "install.sh: warning: no config.txt in the image's boot partition" >&2
    fi
elif [[ -n "$boot" && -f "$boot/config.txt" ]]; then
    enable_camera "$boot/config.txt"
fi
# The kiosk checks what was installed: the config (every field in range) and every listed
# model (loads, classifies). An aarch64 kiosk runs here under qemu-user, with the card's own
# libraries when it has them.
verify_install() {
    if [[ -n "$no_check" ]]; then
        echo "install.sh: warning: --no-check: the config and models were not verified" >&2
        return
    fi
    local runner=() log
    local machine
    machine="$(od -An -t x1 -j 18 -N 2 "$binary" | tr -d ' \n')"
    if [[ "$machine" == b700 && "$(uname -m)" != aarch64 ]]; then
        command -v qemu-aarch64 >/dev/null ||
            die "cannot run the aarch64 kiosk here to verify the install: apt install qemu-user (or, knowingly, --no-check)"
        runner=(qemu-aarch64)
        [[ -e "$root/lib/ld-linux-aarch64.so.1" ]] && runner+=(-L "$root")
    fi
    log="$(mktemp)"
    if ! "${runner[@]}" "$root/usr/local/bin/kiosk" check --root "$root" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        die "installed, but kiosk check rejects it (above): fix the config (--config FILE) and run install.sh again"
    fi
    sed 's/^/  /' "$log"
    rm -f "$log"
}
verify_install

# What was installed, checkable on the Pi later: cd / && sha256sum -c /usr/share/ekspresi/INSTALLED.sha256
# (the config is left out: it is the desk's own, edited after install).
(
    cd "$root"
    sha256sum usr/local/bin/kiosk usr/share/ekspresi/models/* usr/share/doc/ekspresi/* \
        etc/systemd/system/ekspresi-kiosk.service etc/systemd/system/ekspresi-upload.service \
        etc/systemd/system/ekspresi-upload.timer etc/systemd/system/ekspresi-publish.service \
        usr/lib/sysusers.d/ekspresi.conf \
        >usr/share/ekspresi/INSTALLED.sha256.tmp
    mv usr/share/ekspresi/INSTALLED.sha256.tmp usr/share/ekspresi/INSTALLED.sha256
)
sync
echo "installed: /usr/local/bin/kiosk, /etc/ekspresi/config.json, ${units[*]} (enabled)"
