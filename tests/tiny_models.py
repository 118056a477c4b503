"""Tiny Hugging Face models built offline for tests (no hub access): a BERT bi-encoder for
sentence-transformers and a BERT cross-encoder. Recipe: shared/notes/ecosystem.md section 5."""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "use bullet points", "keep answers short", "show every step of the math", "for coding questions add type hints",
    "please be polite and friendly", "no preamble just answer", "the answer is 42", "what is the area of the garden",
    "give an example or analogy", "state your confidence", "end with a tl;dr line", "number the steps",
] * 20


def build_tokenizer(path: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                                 unk_token="[UNK]", mask_token="[MASK]", model_max_length=512)
    hf.save_pretrained(path)
    return hf


def build_bi_encoder(root: Path) -> Path:
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel

    base, out = root / "bert", root / "st"
    tok = build_tokenizer(base)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=512,
                         pad_token_id=tok.pad_token_id)).save_pretrained(base)
    try:
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Normalize, Pooling, Transformer
    word = Transformer(str(base), max_seq_length=64)
    dim = (getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension)()
    SentenceTransformer(modules=[word, Pooling(dim, pooling_mode="mean"), Normalize()], device="cpu").save(str(out))
    return out


def build_cross_encoder(root: Path) -> Path:
    from transformers import BertConfig, BertForSequenceClassification

    out = root / "ce"
    tok = build_tokenizer(out)
    BertForSequenceClassification(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=64,
                                             max_position_embeddings=512, pad_token_id=tok.pad_token_id,
                                             num_labels=1)).save_pretrained(out)
    return out


def build_chat_model(root: Path) -> Path:
    """A tiny (about 300k-parameter) random Llama with a byte-level BPE tokenizer and a ChatML-style chat
    template, saved to ``root / "chat"``. Its replies are junk; use it to exercise chat code paths."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = root / "chat"
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<|pad|>", "<|bos|>", "<|eos|>", "<|unk|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|im_end|>", pad_token="<|pad|>", unk_token="<|unk|>",
        model_max_length=512,
        chat_template="{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                      "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    # head_dim 64, a size every GPU attention kernel (vLLM's included) supports
    cfg = LlamaConfig(vocab_size=len(hf), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                      bos_token_id=hf.bos_token_id, eos_token_id=hf.eos_token_id, pad_token_id=hf.pad_token_id,
                      tie_word_embeddings=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the same weights on every build
        lm = LlamaForCausalLM(cfg)
    lm.generation_config = GenerationConfig(eos_token_id=hf.eos_token_id, pad_token_id=hf.pad_token_id,
                                            do_sample=False)
    lm.save_pretrained(out)
    hf.save_pretrained(out)
    return out
