#!/bin/busybox sh
# /init of the initramfs that run_in_vm.py builds. The kernel has netem, this machine's user space
# does not matter: load the modules, mount this machine's file tree (shared read-only over 9p)
# with a fresh /proc, /sys, /dev, /run and /tmp, mount the writable results share at /tmp/results,
# bind back the folders the check needs from the host's /tmp, run /tmp/results/guest.sh chrooted
# there, power off. The host reads the verdict from the share.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /host
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

stop() {
    echo "netem-vm: $*"
    sync
    reboot -f
}

echo "netem-vm: guest init, kernel $(uname -r)"
for module in $(cat /modules/order); do
    insmod "/modules/$module" || stop "insmod $module failed"
done
grep -q '^sch_netem ' /proc/modules || stop "sch_netem is not loaded"

nine_p="trans=virtio,version=9p2000.L,msize=262144"
mount -t 9p -o "$nine_p,ro,cache=loose" host /host || stop "cannot mount the host's tree"
# A second view of it, which the mounts below (a fresh /tmp among them) leave as it is.
mkdir -p /hostview && mount --bind /host /hostview || stop "cannot bind the host's tree"
mount -t proc proc /host/proc && mount -t sysfs sysfs /host/sys && mount -t devtmpfs devtmpfs /host/dev \
    && mount -t tmpfs tmpfs /host/run && mount -t tmpfs tmpfs /host/tmp || stop "cannot mount /proc /sys /dev /run /tmp"
mkdir -p /host/run/netns /host/dev/shm /host/tmp/results
mount -t 9p -o "$nine_p" results /host/tmp/results || stop "cannot mount the results share"
# The checkout and the build tree may live under the host's /tmp (a CI clone), which the fresh
# /tmp hides: they are bound back in from the second view.
while IFS= read -r path; do
    case $path in /tmp/*) mkdir -p "/host$path" && mount --bind "/hostview$path" "/host$path" \
        || stop "cannot bind $path";; esac
done </host/tmp/results/keep

echo "netem-vm: running the check"
chroot /host /bin/sh /tmp/results/guest.sh
echo "netem-vm: check exited $?"
sync
umount /host/tmp/results
stop "powering off"
