#!/bin/sh
# TEST DOUBLE of the k3s-killall.sh the upstream installer writes: it only records that it ran,
# so the uninstall test can check the role runs it when present.
echo "killall test double ran" > /var/tmp/k3s-killall-double-ran
