# A dynamically linked hello world: libs.fs shows how to give it its libraries.
redo-ifchange hello.c
${CC:-cc} ${CFLAGS:--O2 -Wall} -o "$3" hello.c
