#include <criterion/criterion.h>
#include <diana/diana.h>
Test(dataset, free_null) { diana_dataset_free(NULL); }
