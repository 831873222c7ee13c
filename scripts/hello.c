/* The cookbook's application: the smallest program that shows a container ran. */
#include <stdio.h>

int main(void)
{
	printf("Hello, world!\n");
	return 0;
}
