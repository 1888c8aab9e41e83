# vserver(2) answers on 236; bad input gets an errno, never an oops.
. /tests/lib.sh
expect "OK version 0x30000" probe vs version
expect "s_context: 0" cat /proc/self/status
expect "ctxflags: none" cat /proc/self/status
expect "ERR EINVAL" probe vs raw 0x7777 0 0
expect "ERR EFAULT" probe vs raw 0x0103 dyn 0x10
expect "ERR EFAULT" probe vs raw 0x0201 0 0xffffffffffff0000
expect "ERR EINVAL" probe vs create 70000
expect "ERR EINVAL" probe vs create 1
expect "ERR ESRCH" probe vs migrate 4000
expect "ERR ESRCH" probe vs info 4000
expect "ERR EINVAL" probe vs flags 1 1
# A new context: no privilege needed, a dynamic id; picking one needs
# root of context 0.
expect "s_context: 4915" probe as-user 65534 probe vs create dyn -- cat /proc/self/status
expect "ERR EPERM" probe as-user 65534 probe vs create 200
expect "ERR EPERM" probe as-user 65534 probe vs migrate 1
expect "s_context: 200" probe vs create 200 -- cat /proc/self/status
# Irreversible: a guest neither migrates nor picks an id.
expect "ERR EPERM" probe vs create 201 -- probe vs migrate 0
expect "ERR EPERM" probe vs create 202 -- probe vs create 203
# vsbox finds the patch.
expect "kernel patch present, ABI 0x00030000" vsbox --version
echo ok
