#!/bin/sh
# PID 1 inside the VM started by tools/vmtest/run.  The host root is the
# read-only 9p root; a tmpfs-backed overlay on top makes everything writable
# (writes vanish at exit).  This mounts the xfer share (command script, exit
# status) and any read-write host directories, runs the command with its
# output on the second serial port, stores its exit status and reboots (qemu
# runs with -no-reboot, so it exits).  Swap is off; /sys/block/zram0 is there
# for a test that wants to turn it on.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs -o mode=755 run /run
mkdir -p /run/ovl/upper /run/ovl/work /run/ovl/root /run/xfer
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none xfer /run/xfer
M=/run/ovl/root
if ! mount -t overlay overlay -o lowerdir=/,upperdir=/run/ovl/upper,workdir=/run/ovl/work "$M"; then
    echo "guest-init: overlay mount failed" > /dev/ttyS1
    echo 126 > /run/xfer/rc
    exec /bin/busybox reboot -f
fi
for d in proc sys dev; do mount --bind /$d "$M/$d"; done
mkdir -p "$M/dev/shm" && mount -t tmpfs -o mode=1777 shm "$M/dev/shm"
mkdir -p "$M/dev/pts" && mount -t devpts -o newinstance,ptmxmode=666 devpts "$M/dev/pts"
mount -t tmpfs -o mode=755 run "$M/run"
mkdir -p "$M/run/xfer"
mount --move /run/xfer "$M/run/xfer"     # a virtio-9p tag can be mounted only once
# read-write host directories: tags rw0, rw1, ... paths listed in xfer/rwdirs
i=0
if [ -f "$M/run/xfer/rwdirs" ]; then
    while IFS= read -r d; do
        [ -n "$d" ] || continue
        mkdir -p "$M$d" 2>/dev/null
        mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none,access=any "rw$i" "$M$d" \
            || echo "guest-init: cannot mount rw$i at $d" > /dev/ttyS1
        i=$((i + 1))
    done < "$M/run/xfer/rwdirs"
fi
mount -t tracefs tracefs "$M/sys/kernel/tracing" 2>/dev/null
mount -t tmpfs -o mode=1777 vartmp "$M/var/tmp" 2>/dev/null
ip link set lo up 2>/dev/null || busybox ifconfig lo 127.0.0.1 up 2>/dev/null
# kernel console -> ttyS0 (host log file); command stdout+stderr -> ttyS1 (host stdout)
chroot "$M" /bin/sh -c 'stty -F /dev/ttyS1 raw -echo 2>/dev/null; exec /bin/bash /run/xfer/cmd.sh < /dev/null > /dev/ttyS1 2>&1'
rc=$?
echo "$rc" > "$M/run/xfer/rc"
sync
exec /bin/busybox reboot -f
