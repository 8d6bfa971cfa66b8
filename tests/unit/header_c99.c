/* The public headers compile as strict C99 (and with every warning). */
#include <diana/diana.h>

int main(void)
{
	diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
	(void)o;
	return DIANA_OK;
}
