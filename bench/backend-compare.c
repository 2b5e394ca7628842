#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <gcrypt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <stdint.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
int main(void){
  static unsigned char buf[1<<20], out[1<<20]; unsigned char key[64]={1}, iv[16]={0};
  int n=256; double t;
  EVP_CIPHER_CTX *c=EVP_CIPHER_CTX_new(); EVP_EncryptInit_ex(c,EVP_aes_256_xts(),NULL,key,NULL);
  t=now(); for(int r=0;r<n;r++) for(size_t s=0;s<sizeof buf/512;s++){ uint64_t sec=s+r*2048ull; memcpy(iv,&sec,8); int l; EVP_EncryptInit_ex(c,NULL,NULL,NULL,iv); EVP_EncryptUpdate(c,out+s*512,&l,buf+s*512,512);} 
  printf("openssl xts per-sector: %.0f MB/s\n", n*1.0*sizeof buf/1e6/(now()-t));
  gcry_check_version(NULL); gcry_control(GCRYCTL_INITIALIZATION_FINISHED,0);
  gcry_cipher_hd_t h; gcry_cipher_open(&h,GCRY_CIPHER_AES256,GCRY_CIPHER_MODE_XTS,0); gcry_cipher_setkey(h,key,64);
  t=now(); for(int r=0;r<n;r++) for(size_t s=0;s<sizeof buf/512;s++){ uint64_t sec=s+r*2048ull; memcpy(iv,&sec,8); gcry_cipher_setiv(h,iv,16); gcry_cipher_encrypt(h,out+s*512,512,buf+s*512,512);} 
  printf("gcrypt xts per-sector: %.0f MB/s\n", n*1.0*sizeof buf/1e6/(now()-t));
  unsigned char dk[64]; int it=1000000;
  t=now(); PKCS5_PBKDF2_HMAC("password",8,(unsigned char*)"saltsaltsalt",12,it,EVP_sha256(),32,dk); printf("openssl pbkdf2: %.2f M/s\n", it/1e6/(now()-t));
  t=now(); gcry_kdf_derive("password",8,GCRY_KDF_PBKDF2,GCRY_MD_SHA256,"saltsaltsalt",12,it,32,dk); printf("gcrypt pbkdf2: %.2f M/s\n", it/1e6/(now()-t));
  /* precomputed-state pbkdf2 with low-level SHA256 */
  SHA256_CTX ip, op, x; unsigned char k[64]={0}, pad[64]; memcpy(k,"password",8);
  for(int i=0;i<64;i++) pad[i]=k[i]^0x36; SHA256_Init(&ip); SHA256_Update(&ip,pad,64);
  for(int i=0;i<64;i++) pad[i]=k[i]^0x5c; SHA256_Init(&op); SHA256_Update(&op,pad,64);
  unsigned char u[32]={0};
  t=now(); for(int i=0;i<it;i++){ x=ip; SHA256_Update(&x,u,32); SHA256_Final(u,&x); x=op; SHA256_Update(&x,u,32); SHA256_Final(u,&x);} printf("custom openssl-lowlevel pbkdf2: %.2f M/s\n", it/1e6/(now()-t));
  gcry_md_hd_t mi, mo, m2; gcry_md_open(&mi,GCRY_MD_SHA256,0); gcry_md_write(mi,pad,64); gcry_md_open(&mo,GCRY_MD_SHA256,0);gcry_md_write(mo,pad,64);
  t=now(); for(int i=0;i<it;i++){ gcry_md_copy(&m2,mi); gcry_md_write(m2,u,32); memcpy(u,gcry_md_read(m2,0),32); gcry_md_close(m2); gcry_md_copy(&m2,mo); gcry_md_write(m2,u,32); memcpy(u,gcry_md_read(m2,0),32); gcry_md_close(m2);} printf("custom gcrypt md_copy pbkdf2: %.2f M/s\n", it/1e6/(now()-t));
  return 0;}
