#!/bin/bash
# Finishes a libvirt Vagrant box from an mmdebstrap root file system.
# Usage: vagrant-libvirt.sh ROOTFS OUTDIR DISK_GIB VAGRANT_PUBKEY
# Writes OUTDIR/{vmlinuz,initrd.img,pglab.box}. Needs no loop device and no mount:
# mkfs.ext4 -d copies the tree into the image file.
set -euo pipefail
root=$1 out=$2 disk_gib=$3 pubkey=$4
say() { echo "vagrant-libvirt: $*"; }

say "vagrant user with Vagrant's insecure key and passwordless sudo"
chroot "$root" useradd --create-home --shell /bin/bash --groups sudo vagrant
install -d -m 700 -o 1000 -g 1000 "$root/home/vagrant/.ssh"
install -m 600 -o 1000 -g 1000 "$pubkey" "$root/home/vagrant/.ssh/authorized_keys"
chroot "$root" chown -R vagrant:vagrant /home/vagrant
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' > "$root/etc/sudoers.d/vagrant"
chmod 440 "$root/etc/sudoers.d/vagrant"
echo 'UseDNS no' > "$root/etc/ssh/sshd_config.d/pglab.conf"

say "network: systemd-networkd, DHCP on eth0 (Vagrant configures eth1 itself)"
cat > "$root/etc/systemd/network/10-eth0.network" <<'NET'
[Match]
Name=eth0
[Network]
DHCP=ipv4
NET
chroot "$root" systemctl enable systemd-networkd.service ssh.service
chroot "$root" systemctl mask systemd-networkd-wait-online.service
# Each VM must get its own DHCP identity and machine id.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
echo '/dev/vda / ext4 defaults 0 1' > "$root/etc/fstab"

say "kernel and initrd for direct kernel boot"
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1)
initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -1)
install -m 644 "$kernel" "$out/vmlinuz"
install -m 644 "$initrd" "$out/initrd.img"

say "root file system image (${disk_gib} GiB, sparse)"
mkfs.ext4 -q -F -L root -d "$root" "$out/root.raw" "${disk_gib}G"
say "qcow2"
qemu-img convert -O qcow2 "$out/root.raw" "$out/box.img"
rm -f "$out/root.raw"
printf '{"provider":"libvirt","format":"qcow2","virtual_size":%s}\n' "$disk_gib" > "$out/metadata.json"
cat > "$out/Vagrantfile" <<'VF'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.driver = "qemu"
  end
end
VF
say "box archive"
tar -C "$out" -cf "$out/pglab.box" metadata.json Vagrantfile box.img
rm -f "$out/box.img"
say "done"
