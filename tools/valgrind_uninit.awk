# Counts memcheck's uninitialised-value reports in a valgrind log, and those of them whose stack
# names fastnn's code. Prints "<reports> <in fastnn>". Used by tools/valgrind.sh.
#
# A report is a header line ("Conditional jump or move depends on uninitialised value(s)", "Use
# of uninitialised value of size 8", "Syscall param ... points to uninitialised byte(s)") followed
# by its stack frame lines ("==PID==    at 0x...: fn (file.c:12)", "==PID==    by 0x...: ...").
# It ends at the first line that is not a frame: the blank "==PID== " line, an "Address ..." line,
# or another process's header when logs are concatenated. Only frames count: the summary's "Use
# --track-origins=yes to see where uninitialised values come from", or a "Command: ... tests/
# test_loss_kernels.py" line, is neither a report nor fastnn code.
#
# A frame is fastnn's when it names an fnn_ function, a source file under csrc/ or fastnn/ (the
# Cython wrappers; valgrind.sh passes --fullpath-after=<repo>/ so these paths show relative to
# the repository, while every other source shows an absolute path), or the extension itself
# ("(in /.../fastnn/_kernels.cpython-311-x86_64-linux-gnu.so)", for frames without debug info).

/^==[0-9]+==    (at|by) 0x[0-9A-Fa-f]+: / {
    if (open && ($0 ~ /: fnn_[A-Za-z0-9_.]* \(/ || $0 ~ /\((csrc|fastnn)\/[^ ]*:[0-9]+\)$/ \
                 || $0 ~ /_kernels\.cpython[^ ]*\.so\)$/)) {
        fastnn++
        open = 0
    }
    next
}
{ open = 0 }
/depends on uninitialised value|Use of uninitialised value|uninitialised byte/ {
    reports++
    open = 1
}
END { print reports + 0, fastnn + 0 }
