/* Unit tests of lib/display.c: pin-value redaction (also in every error
 * detail and in a real keystore failure) and escaping for human output. */
#include "test.h"

#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/display.h"
#include "lib/error.h"
#include "lib/keystore.h"

static void redacts(const char *in, const char *want)
{
	char *out = NULL;
	assert_int_equal(khsm_redact(in, &out), KHSM_EOK);
	assert_string_equal(out, want);
	free(out);
}

static void test_redact(void **state)
{
	(void)state;
	redacts("pkcs11:token=card;pin-value=648219 /usr/lib/softhsm.so",
	        "pkcs11:token=card;pin-value=*** /usr/lib/softhsm.so");
	redacts("pkcs11:token=card;pin-value=6%34%38219;object=x", "pkcs11:token=card;pin-value=***;object=x");
	redacts("pkcs11:token=card?pin-value=648219&module-name=x", "pkcs11:token=card?pin-value=***&module-name=x");
	redacts("no token matches pkcs11:token=a;PIN-VALUE=1 through module m; is it in?",
	        "no token matches pkcs11:token=a;PIN-VALUE=*** through module m; is it in?");
	redacts("'pkcs11:pin-value=12' and 'pkcs11:pin-value=34'", "'pkcs11:pin-value=***' and 'pkcs11:pin-value=***'");
	redacts("pin-value=", "pin-value=***");
	redacts("pin-value=1234567890", "pin-value=***");
	redacts("pkcs11:token=card;pin-source=/etc/knot/pin", "pkcs11:token=card;pin-source=/etc/knot/pin");
	redacts("", "");
	char *out = NULL;
	assert_int_equal(khsm_redact(NULL, &out), KHSM_EINVAL);
	assert_int_equal(khsm_redact("x", NULL), KHSM_EINVAL);
}

/* In a fixed buffer a longer mask cuts the tail, never overruns. */
static void test_redact_buf(void **state)
{
	(void)state;
	char buf[16] = "a;pin-value=1;b";
	khsm_redact_buf(buf, sizeof(buf));
	assert_string_equal(buf, "a;pin-value=***");
	char small[14] = "pin-value=123";
	khsm_redact_buf(small, sizeof(small));
	assert_string_equal(small, "pin-value=***");
	char tiny[12] = "pin-value=9";
	khsm_redact_buf(tiny, sizeof(tiny));
	assert_string_equal(tiny, "pin-value=*");
	khsm_redact_buf(NULL, 4);
}

/* Every error detail, whatever it quotes. */
static void test_err_detail_redacted(void **state)
{
	(void)state;
	khsm_err_detail("no token matches %s through module %s", "pkcs11:token=gone;pin-value=648219",
	                "/usr/lib/softhsm.so");
	assert_string_equal(khsm_err_last_detail(),
	                    "no token matches pkcs11:token=gone;pin-value=*** through module /usr/lib/softhsm.so");
	khsm_err_clear();
}

/* The message of a keystore whose token is gone (SoftHSM with an empty token
 * directory) names the URI without its PIN. */
static void test_keystore_gone_redacted(void **state)
{
	(void)state;
	glob_t g;
	assert_int_equal(glob("/usr/lib/*/softhsm/libsofthsm2.so", 0, NULL, &g), 0);
	char dir[] = "/tmp/khsm-display.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char conf[64], tokens[64], config[512];
	snprintf(conf, sizeof(conf), "%s/softhsm2.conf", dir);
	snprintf(tokens, sizeof(tokens), "%s/tokens", dir);
	assert_int_equal(mkdir(tokens, 0700), 0);
	FILE *f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens);
	fclose(f);
	setenv("SOFTHSM2_CONF", conf, 1);
	snprintf(config, sizeof(config), "pkcs11:token=gone;pin-value=648219 %s", g.gl_pathv[0]);
	globfree(&g);

	khsm_keystore_t *ks = NULL;
	khsm_err_clear();
	assert_int_not_equal(khsm_keystore_open(config, &ks), KHSM_EOK);
	assert_null(ks);
	const char *d = khsm_err_last_detail();
	assert_non_null(d);
	assert_non_null(strstr(d, "pin-value=***"));
	assert_null(strstr(d, "648219"));
	khsm_err_clear();
	unlink(conf);
	rmdir(tokens);
	rmdir(dir);
}

static void escapes(const char *in, const char *want)
{
	char *out = NULL;
	assert_int_equal(khsm_escape(in, &out), KHSM_EOK);
	assert_string_equal(out, want);
	free(out);
	assert_string_equal(khsm_esc(in), want);
}

static void test_escape(void **state)
{
	(void)state;
	escapes("SmartCard-HSM (UserPIN)", "SmartCard-HSM (UserPIN)");
	escapes("evil\x1b[2J\x1b]0;title\x07label", "evil\\x1b[2J\\x1b]0;title\\x07label");
	escapes("two\nlines\r\tand\x7f", "two\\x0alines\\x0d\\x09and\\x7f");
	/* Valid UTF-8 stays; C1 controls (U+009B is CSI) and broken UTF-8 do not. */
	escapes("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91");
	escapes("a\xc2\x9b" "31mb", "a\\xc2\\x9b" "31mb");
	escapes("\xff\xc3(\xe2\x82", "\\xff\\xc3(\\xe2\\x82");
	escapes("\xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80",
	        "\\xc0\\xaf \\xed\\xa0\\x80 \\xf4\\x90\\x80\\x80");
	escapes("", "");
	assert_string_equal(khsm_esc(NULL), "");
	/* Nothing to escape: the text itself, no copy. */
	const char *plain = "example.com. KSK";
	assert_ptr_equal(khsm_esc(plain), plain);
	char *out = NULL;
	assert_int_equal(khsm_escape(NULL, &out), KHSM_EINVAL);
}

/* Eight results stay valid at once; a long text is cut with "...". */
static void test_esc_slots(void **state)
{
	(void)state;
	const char *r[8];
	char in[8][8];
	for (int i = 0; i < 8; i++) {
		snprintf(in[i], sizeof(in[i]), "%d\n", i);
		r[i] = khsm_esc(in[i]);
	}
	for (int i = 0; i < 8; i++) {
		char want[16];
		snprintf(want, sizeof(want), "%d\\x0a", i);
		assert_string_equal(r[i], want);
	}
	char *big = malloc(3000);
	assert_non_null(big);
	memset(big, '\x01', 2999);
	big[2999] = '\0';
	const char *e = khsm_esc(big);
	assert_int_equal(strlen(e), 4095);
	assert_string_equal(e + 4092, "...");
	assert_memory_equal(e, "\\x01\\x01", 8);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redact),
		cmocka_unit_test(test_redact_buf),
		cmocka_unit_test(test_err_detail_redacted),
		cmocka_unit_test(test_keystore_gone_redacted),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_esc_slots),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
