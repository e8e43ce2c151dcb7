/* Zone names as the operator types them, checked and normalised once:
 * lower case, final dot, A-labels only, DNS length limits (libknot's dname). */
#pragma once

/** Normalise a zone name: any case, with or without final dot, IDN in xn-- form.
 *  Gives a lower-case FQDN with final dot ("Example.COM" -> "example.com.", "." stays ".").
 *  Rejects empty labels, labels over 63 octets, names over 255 octets, non-ASCII
 *  (asks for the xn-- form) and characters other than letters, digits, '-', '_', '/'.
 *  \param[out] zone_ptr  free with free(). */
int khsm_zone_normalize(const char *input, char **zone_ptr);
