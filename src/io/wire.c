/* wire.c: a pre-check of the protobuf wire format, before protobuf-c unpacks it.
 *
 * protobuf-c unpacks recursively (a file nested a few thousand levels deep
 * overflows the stack), copies every bytes field, and turns a few bytes of input
 * into hundreds of bytes of structures (an empty NodeProto is 2 bytes on the
 * wire).  This walk, iterative and guided by the generated descriptors, checks
 * that every length fits inside its parent, that nesting stays within
 * BNF_MAX_NESTING messages, that no string holds a NUL byte (protobuf-c would cut
 * it when writing), and estimates the memory unpacking will take, so a file can
 * be refused with a message before anything is allocated. */
#include "internal.h"

#include <string.h>

#define MALLOC_OVERHEAD 16

typedef struct {
    const ProtobufCMessageDescriptor *desc;
    size_t end;
} frame;

int bnf_wire_varint(const uint8_t *d, size_t end, size_t *pos, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        uint8_t b;
        if (*pos >= end)
            return -1;
        b = d[(*pos)++];
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -1;
}

static size_t scalar_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM: case PROTOBUF_C_TYPE_BOOL:
        return 4;
    default:
        return 8; /* 64-bit scalars, pointers, ProtobufCBinaryData halves */
    }
}

bnf_status bnf_wire_precheck(const uint8_t *d, size_t n, const char *what, uint64_t *estimate,
                             bnf_err *err)
{
    frame stack[BNF_MAX_NESTING + 1];
    int top = 0;
    size_t pos = 0;
    uint64_t mem = 0;

    stack[0].desc = &onnx__model_proto__descriptor;
    stack[0].end = n;
    mem += onnx__model_proto__descriptor.sizeof_message + MALLOC_OVERHEAD;
    for (;;) {
        uint64_t key, len;
        unsigned field, wt;
        const ProtobufCFieldDescriptor *fd;
        const frame *f = &stack[top];

        if (pos == f->end) {
            if (top == 0)
                break;
            top--;
            continue;
        }
        if (bnf_wire_varint(d, f->end, &pos, &key) != 0)
            return bnf_fail(err, BNF_ERR_INVALID, "%s: truncated or malformed field key at byte %zu",
                            what, pos);
        field = (unsigned)(key >> 3);
        wt = (unsigned)(key & 7);
        if (field == 0 || key >> 32)
            return bnf_fail(err, BNF_ERR_INVALID, "%s: invalid field number at byte %zu", what, pos);
        fd = protobuf_c_message_descriptor_get_field(f->desc, field);
        mem += 32; /* protobuf-c notes every field occurrence while it unpacks */
        if (!fd)
            mem += 32 + MALLOC_OVERHEAD; /* kept as an unknown field */
        else if (fd->label == PROTOBUF_C_LABEL_REPEATED)
            mem += scalar_size(fd->type) * 2; /* array slot, arrays grow by count */
        switch (wt) {
        case 0:
            if (bnf_wire_varint(d, f->end, &pos, &len) != 0)
                return bnf_fail(err, BNF_ERR_INVALID, "%s: truncated varint at byte %zu", what, pos);
            break;
        case 1:
        case 5: {
            size_t w = wt == 1 ? 8 : 4;
            if (f->end - pos < w)
                return bnf_fail(err, BNF_ERR_INVALID, "%s: truncated fixed-size field at byte %zu",
                                what, pos);
            pos += w;
            break;
        }
        case 2:
            if (bnf_wire_varint(d, f->end, &pos, &len) != 0)
                return bnf_fail(err, BNF_ERR_INVALID, "%s: truncated length at byte %zu", what, pos);
            if (len > f->end - pos)
                return bnf_fail(err, BNF_ERR_INVALID,
                                "%s: a field at byte %zu claims %llu bytes, only %zu remain in its "
                                "enclosing message (truncated or corrupt file)",
                                what, pos, (unsigned long long)len, f->end - pos);
            if (!fd) {
                mem += len;
                pos += len;
                break;
            }
            if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
                const ProtobufCMessageDescriptor *sub = fd->descriptor;
                if (top == BNF_MAX_NESTING)
                    return bnf_fail(err, BNF_ERR_UNSUPPORTED,
                                    "%s: messages nested more than %d deep at byte %zu (the "
                                    "limit keeps parsing from overflowing the stack)",
                                    what, BNF_MAX_NESTING, pos);
                mem += sub->sizeof_message + MALLOC_OVERHEAD + 8;
                stack[++top].desc = sub;
                stack[top].end = pos + (size_t)len;
                continue;
            }
            if (fd->type == PROTOBUF_C_TYPE_STRING) {
                if (memchr(d + pos, 0, (size_t)len))
                    return bnf_fail(err, BNF_ERR_INVALID,
                                    "%s: string field '%s' at byte %zu holds a NUL byte", what,
                                    fd->name, pos);
                mem += len + 1 + MALLOC_OVERHEAD;
            } else if (fd->type == PROTOBUF_C_TYPE_BYTES) {
                mem += len + MALLOC_OVERHEAD;
            } else { /* a packed repeated scalar: at most one element a byte */
                mem += len * scalar_size(fd->type);
            }
            pos += (size_t)len;
            break;
        default:
            return bnf_fail(err, BNF_ERR_INVALID, "%s: unsupported wire type %u at byte %zu", what,
                            wt, pos);
        }
    }
    *estimate = mem;
    return BNF_OK;
}
