// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title gpumesh escrow: renters' deposits, paid out to providers by batches of EIP-712 vouchers.
/// @notice Money model (see packages/settlement/README.md):
///  - A renter deposits an ERC-20 into its own account (per renter and token), usable with any provider.
///  - Withdrawing is two-step: announce an amount, then withdraw it once `withdrawalDelay` seconds have
///    passed. Redemptions still work during the delay and come first: a withdrawal takes at most what is
///    left in the account when it runs.
///  - A voucher is the renter's EIP-712 signature over
///    `Voucher(bytes32 leaseId,address provider,address renter,address token,uint256 cumulativeAmount,uint64 sequence)`
///    under the domain {name "gpumesh", version "1", chainId, verifyingContract: this contract}.
///  - `redeem` takes groups of vouchers (one provider and token per group, any leases and renters).
///    Each lease, identified by its voucher key keccak256(abi.encode(leaseId, provider, renter, token)),
///    is paid only the increase of `cumulativeAmount` over what it was already paid, capped by the
///    renter's balance. Each group makes one token transfer, to the provider's payout address.
///  - A bad entry never reverts the batch: it pays nothing and is reported (event and return value).
contract GpumeshEscrow {
    // ---------------------------------------------------------------- entry result codes
    uint8 internal constant PAID = 0; // the whole increase was paid
    uint8 internal constant CAPPED = 1; // part of the increase was paid: the renter's balance ran out
    uint8 internal constant REPLAY = 2; // cumulativeAmount is not above what the lease was already paid
    uint8 internal constant BAD_SIGNATURE = 3; // high s, or no key recovers from the signature
    uint8 internal constant WRONG_SIGNER = 4; // the signer is not the voucher's renter (or other domain/fields)
    uint8 internal constant NO_BALANCE = 5; // the renter's balance in this token is zero

    bytes32 internal constant VOUCHER_TYPEHASH = keccak256(
        "Voucher(bytes32 leaseId,address provider,address renter,address token,uint256 cumulativeAmount,uint64 sequence)"
    );
    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    /// secp256k1 n / 2: a signature's s must not exceed it.
    uint256 internal constant HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    uint256 internal immutable cachedChainId;
    bytes32 internal immutable cachedDomainSeparator;
    /// Seconds between announcing a withdrawal and being able to withdraw it.
    uint256 public immutable withdrawalDelay;

    /// One storage slot per (renter, token).
    struct Account {
        uint128 balance;
        uint96 pendingWithdrawal;
        uint32 unlockAt;
    }

    /// One voucher in a group: the group gives the provider and the token. The signature is EIP-2098
    /// compact: r, and vs = s with the parity of v (v - 27) in the top bit.
    struct Entry {
        bytes32 leaseId;
        address renter;
        uint256 cumulativeAmount;
        uint64 sequence;
        bytes32 r;
        bytes32 vs;
    }

    struct Group {
        address provider;
        address token;
        Entry[] entries;
    }

    /// By accountKey(renter, token).
    mapping(bytes32 accountKey => Account) internal accounts;
    /// What each lease was paid so far, by voucher key.
    mapping(bytes32 voucherKey => uint256) public paidByKey;
    mapping(address provider => address) internal payoutAddresses;

    event Deposited(address indexed renter, address indexed token, uint256 amount, uint256 balance);
    event WithdrawalAnnounced(address indexed renter, address indexed token, uint256 amount, uint256 unlockAt);
    event Withdrawn(address indexed renter, address indexed token, uint256 amount);
    event PayoutAddressSet(address indexed provider, address payout);
    /// One per paid entry: `amount` was paid now, `paidTotal` is what the lease has been paid in all.
    event Redeemed(bytes32 indexed voucherKey, uint256 amount, uint256 paidTotal);
    /// One per entry that paid nothing, with its code.
    event RedeemSkipped(bytes32 indexed voucherKey, bytes32 indexed leaseId, uint8 code);
    /// One per group with something paid: the single transfer of the group.
    event Payout(address indexed provider, address indexed token, address payee, uint256 amount);

    error ZeroAmount();
    error AmountTooLarge();
    error InsufficientBalance(uint256 balance, uint256 amount);
    error NoWithdrawalAnnounced();
    error WithdrawalLocked(uint256 unlockAt);
    error TransferFailed(address token);

    constructor(uint256 withdrawalDelaySec) {
        require(withdrawalDelaySec <= 365 days, AmountTooLarge());
        withdrawalDelay = withdrawalDelaySec;
        cachedChainId = block.chainid;
        cachedDomainSeparator = buildDomainSeparator();
    }

    // ---------------------------------------------------------------- renters

    /// Moves `amount` of `token` from the caller (who approved this contract) into the caller's account.
    function deposit(address token, uint256 amount) external {
        require(amount != 0, ZeroAmount());
        Account storage account = accounts[accountKey(msg.sender, token)];
        uint256 balance = uint256(account.balance) + amount;
        require(balance <= type(uint128).max, AmountTooLarge());
        account.balance = uint128(balance);
        safeTransferFrom(token, msg.sender, address(this), amount);
        emit Deposited(msg.sender, token, amount, balance);
    }

    /// Announces a withdrawal of `amount` (replacing any earlier one and restarting the delay); 0 cancels.
    function announceWithdrawal(address token, uint256 amount) external {
        Account storage account = accounts[accountKey(msg.sender, token)];
        require(amount <= account.balance, InsufficientBalance(account.balance, amount));
        require(amount <= type(uint96).max, AmountTooLarge());
        uint256 unlockAt = amount == 0 ? 0 : block.timestamp + withdrawalDelay;
        account.pendingWithdrawal = uint96(amount);
        account.unlockAt = uint32(unlockAt);
        emit WithdrawalAnnounced(msg.sender, token, amount, unlockAt);
    }

    /// Withdraws the announced amount once unlocked, or what is left of the balance if less.
    function withdraw(address token) external returns (uint256 amount) {
        Account storage account = accounts[accountKey(msg.sender, token)];
        Account memory a = account;
        require(a.pendingWithdrawal != 0, NoWithdrawalAnnounced());
        require(block.timestamp >= a.unlockAt, WithdrawalLocked(a.unlockAt));
        amount = a.pendingWithdrawal < a.balance ? a.pendingWithdrawal : a.balance;
        account.balance = a.balance - uint128(amount);
        account.pendingWithdrawal = 0;
        account.unlockAt = 0;
        if (amount != 0) safeTransfer(token, msg.sender, amount);
        emit Withdrawn(msg.sender, token, amount);
    }

    // ---------------------------------------------------------------- providers

    /// Where the caller's redemptions are paid (a fleet operator's treasury, a cold wallet); 0 resets.
    function setPayoutAddress(address payout) external {
        payoutAddresses[msg.sender] = payout;
        emit PayoutAddressSet(msg.sender, payout);
    }

    /// Redeems groups of vouchers; anyone may call it, the money always goes to each voucher's provider.
    /// @return results one word per entry, in order: `paid << 8 | code`.
    function redeem(Group[] calldata groups) external returns (uint256[] memory results) {
        uint256 count;
        for (uint256 g; g < groups.length; ++g) count += groups[g].entries.length;
        results = new uint256[](count);
        bytes32 separator = domainSeparator();
        uint256 k;
        for (uint256 g; g < groups.length; ++g) {
            Group calldata group = groups[g];
            address provider = group.provider;
            address token = group.token;
            uint256 total;
            Entry[] calldata entries = group.entries;
            for (uint256 i; i < entries.length; ++i) {
                (uint256 amount, uint8 code) = redeemOne(separator, provider, token, entries[i]);
                total += amount;
                results[k++] = (amount << 8) | code;
            }
            if (total != 0) {
                address payee = payoutAddresses[provider];
                if (payee == address(0)) payee = provider;
                safeTransfer(token, payee, total);
                emit Payout(provider, token, payee, total);
            }
        }
    }

    function redeemOne(bytes32 separator, address provider, address token, Entry calldata e)
        internal
        returns (uint256 amount, uint8 code)
    {
        address renter = e.renter;
        (bytes32 key, bytes32 digest) = keyAndDigest(separator, e, provider, renter, token);
        uint256 s = uint256(e.vs) & ((1 << 255) - 1);
        if (s > HALF_N) return skip(key, e.leaseId, BAD_SIGNATURE);
        address signer = ecrecover(digest, uint8(uint256(e.vs) >> 255) + 27, e.r, bytes32(s));
        if (signer == address(0)) return skip(key, e.leaseId, BAD_SIGNATURE);
        if (signer != renter) return skip(key, e.leaseId, WRONG_SIGNER);
        uint256 paid = paidByKey[key];
        if (e.cumulativeAmount <= paid) return skip(key, e.leaseId, REPLAY);
        Account storage account = accounts[accountKey(renter, token)];
        uint256 balance = account.balance;
        if (balance == 0) return skip(key, e.leaseId, NO_BALANCE);
        amount = e.cumulativeAmount - paid;
        if (amount > balance) {
            amount = balance;
            code = CAPPED;
        }
        unchecked {
            account.balance = uint128(balance - amount);
            paid += amount;
        }
        paidByKey[key] = paid;
        emit Redeemed(key, amount, paid);
    }

    function skip(bytes32 key, bytes32 leaseId, uint8 code) internal returns (uint256, uint8) {
        emit RedeemSkipped(key, leaseId, code);
        return (0, code);
    }

    // ---------------------------------------------------------------- views

    /// The voucher key of a lease: what `paidByKey` and the events are keyed by.
    function voucherKeyOf(bytes32 leaseId, address provider, address renter, address token)
        public
        pure
        returns (bytes32 key)
    {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, leaseId)
            mstore(add(m, 0x20), provider)
            mstore(add(m, 0x40), renter)
            mstore(add(m, 0x60), token)
            key := keccak256(m, 0x80)
        }
    }

    /// What a lease has been paid so far.
    function paid(bytes32 leaseId, address provider, address renter, address token) external view returns (uint256) {
        return paidByKey[voucherKeyOf(leaseId, provider, renter, token)];
    }

    /// A renter's account: balance (including any pending withdrawal), pending withdrawal, unlock time (s).
    function accountOf(address renter, address token)
        external
        view
        returns (uint256 balance, uint256 pendingWithdrawal, uint256 unlockAt)
    {
        Account memory a = accounts[accountKey(renter, token)];
        return (a.balance, a.pendingWithdrawal, a.unlockAt);
    }

    /// The address a provider's redemptions are paid to.
    function payoutOf(address provider) external view returns (address) {
        address payee = payoutAddresses[provider];
        return payee == address(0) ? provider : payee;
    }

    function domainSeparator() public view returns (bytes32) {
        return block.chainid == cachedChainId ? cachedDomainSeparator : buildDomainSeparator();
    }

    // ---------------------------------------------------------------- internals

    function buildDomainSeparator() internal view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, keccak256("gpumesh"), keccak256("1"), block.chainid, address(this)));
    }

    function accountKey(address renter, address token) internal pure returns (bytes32 key) {
        assembly ("memory-safe") {
            mstore(0x00, renter)
            mstore(0x20, token)
            key := keccak256(0x00, 0x40)
        }
    }

    /// The voucher key and the EIP-712 digest of an entry, from one layout in scratch memory:
    /// [typeHash, leaseId, provider, renter, token, cumulativeAmount, sequence]; the key hashes words
    /// 1–4, the struct hash all seven, the digest keccak256(0x1901 ‖ domainSeparator ‖ structHash).
    function keyAndDigest(bytes32 separator, Entry calldata e, address provider, address renter, address token)
        internal
        pure
        returns (bytes32 key, bytes32 digest)
    {
        bytes32 typeHash = VOUCHER_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typeHash)
            mstore(add(m, 0x20), calldataload(e)) // leaseId
            mstore(add(m, 0x40), provider)
            mstore(add(m, 0x60), renter)
            mstore(add(m, 0x80), token)
            key := keccak256(add(m, 0x20), 0x80)
            calldatacopy(add(m, 0xa0), add(e, 0x40), 0x40) // cumulativeAmount, sequence
            let structHash := keccak256(m, 0xe0)
            mstore(m, 0x1901000000000000000000000000000000000000000000000000000000000000)
            mstore(add(m, 0x02), separator)
            mstore(add(m, 0x22), structHash)
            digest := keccak256(m, 0x42)
        }
    }

    function safeTransfer(address token, address to, uint256 amount) internal {
        (bool ok, bytes memory data) = token.call(abi.encodeWithSelector(0xa9059cbb, to, amount));
        require(ok && (data.length == 0 ? token.code.length != 0 : abi.decode(data, (bool))), TransferFailed(token));
    }

    function safeTransferFrom(address token, address from, address to, uint256 amount) internal {
        (bool ok, bytes memory data) = token.call(abi.encodeWithSelector(0x23b872dd, from, to, amount));
        require(ok && (data.length == 0 ? token.code.length != 0 : abi.decode(data, (bool))), TransferFailed(token));
    }
}
