// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC2309} from "@openzeppelin/contracts/interfaces/IERC2309.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IERC5192} from "./IERC5192.sol";

/**
 * @title DeedRegistry
 * @notice The on-chain half of a county deed registry. The county's deed database stays the
 * authority; this contract holds what lets anyone check it without trusting the county:
 *
 * - an append-only, hash-chained sequence of anchored batch roots. Each root is the root of an
 *   OpenZeppelin `StandardMerkleTree` (standard-v1) whose leaves are salted commitments to recorded
 *   instruments, so nothing about a record is readable on chain;
 * - one ERC-721 token per tax-map parcel, held in the registry's own custody and locked (ERC-5192).
 *   Parcels are tokenized in consecutive ranges with one ERC-2309 `ConsecutiveTransfer` event and no
 *   storage write per token; the token id -> parcel mapping of each range is authenticated by a
 *   second standard-v1 root (leaves `(uint256 tokenId, string parcelKey)`) anchored with the batch;
 * - per-record revocation inside a batch, for records superseded when a batch is rolled back.
 *
 * Version 2 (`REGISTRY_VERSION`): the public verification takes a record *commitment* and applies the
 * standard-v1 leaf hash itself, so neither the root nor an inner node can pose as a record (version 1
 * also had a raw-leaf `verifyRecord`, through which a revoked record's parent node still verified);
 * admin, pauser and registrar are three distinct keys; token numbering continues from the
 * deployment this one succeeds. Auditors pin deployments by address, block range and code hash in
 * the registry's trust root (docs/proof-bundle.md), never by an address found in a bundle.
 *
 * @dev OpenZeppelin's `ERC721Consecutive` only mints batches during construction, which a registry
 * that tokenizes parcels as they are first recorded cannot use. This contract keeps OpenZeppelin's
 * `ERC721` and adds the smallest lazy-ownership rule that makes post-construction ERC-2309 mints
 * sound: every token id below `nextTokenId()` that was never moved belongs to the contract itself.
 * Tokens cannot be burned, so that rule never has to remember a burn. ERC-5192 asks for a `Locked`
 * event at mint; tokens here are locked from birth and forever, which `locked()` and ERC-165 state, and
 * a per-token event would cost the per-token write this design avoids, so none is emitted.
 */
contract DeedRegistry is ERC721, IERC2309, IERC5192, AccessControl, Pausable {
    /// @notice May anchor batches, tokenize parcels, revoke records and move parcel tokens.
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");
    /// @notice May pause and unpause every state change.
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    /// @notice The rules this code implements; the trust root records it beside the code hash.
    uint256 public constant REGISTRY_VERSION = 2;

    /// @notice An anchored batch. Four storage slots; written once, never changed.
    struct Batch {
        bytes32 root; // standard-v1 root over the batch's record commitments
        bytes32 parcelRoot; // standard-v1 root over (tokenId, parcelKey) of the tokens minted with it, or 0
        bytes32 chainHash; // keccak256(previous chainHash, batchId, root, recordCount, parcelRoot, firstTokenId, tokenCount)
        uint64 recordCount;
        uint64 firstTokenId;
        uint64 tokenCount;
        uint64 anchoredAtBlock;
    }

    Batch[] private _batches;
    mapping(bytes32 root => uint256 batchIdPlusOne) private _batchOfRoot;
    mapping(uint256 batchId => mapping(bytes32 leaf => uint256 blockNumber)) private _revokedAt;
    uint64 private _nextTokenId = 1;

    /// @notice A batch root was appended to the registry.
    event BatchAnchored(
        uint256 indexed batchId,
        bytes32 indexed root,
        bytes32 chainHash,
        uint64 recordCount,
        bytes32 parcelRoot,
        uint64 firstTokenId,
        uint64 tokenCount
    );

    /// @notice A record inside an anchored batch was revoked (superseded); the batch itself stands.
    event RecordRevoked(uint256 indexed batchId, bytes32 indexed leaf, bytes32 reason);

    /// @dev The caller asked for batch `expected` but the next batch id is `actual` (a resent or stale transaction).
    error DeedRegistryUnexpectedBatchId(uint256 expected, uint256 actual);
    /// @dev `root` is already anchored as batch `batchId`; nothing is anchored twice.
    error DeedRegistryRootAlreadyAnchored(bytes32 root, uint256 batchId);
    /// @dev A batch needs a non-zero root and at least one record.
    error DeedRegistryEmptyBatch();
    /// @dev A parcel root must be given exactly when tokens are minted.
    error DeedRegistryInvalidParcelRoot();
    /// @dev No batch with this id has been anchored.
    error DeedRegistryUnknownBatch(uint256 batchId);
    /// @dev Parcel tokens are locked: only the registrar moves them.
    error DeedRegistryTokenLocked(uint256 tokenId);
    /// @dev Parcel tokens are never burned; a retired parcel keeps its token and history.
    error DeedRegistryTokenNotBurnable(uint256 tokenId);
    /// @dev The admin key must be neither zero nor the hot registrar key: a stolen registrar key
    /// must not be able to grant roles.
    error DeedRegistryRolesNotSeparated(address admin, address registrar);

    /**
     * @param admin receives DEFAULT_ADMIN_ROLE (a cold key: grants and revokes the other roles).
     * @param pauser receives PAUSER_ROLE.
     * @param registrar receives REGISTRAR_ROLE (the hot key the anchoring worker signs with).
     * @param firstTokenId the first parcel token id; a deployment succeeding another continues its
     *        numbering so token ids stay unique across the registry's deployments (0 means 1).
     *
     * Requirements: `admin` is not zero and is not `registrar`; `registrar` is not zero.
     */
    constructor(
        string memory name_,
        string memory symbol_,
        address admin,
        address pauser,
        address registrar,
        uint64 firstTokenId
    ) ERC721(name_, symbol_) {
        if (admin == address(0) || registrar == address(0) || admin == registrar) {
            revert DeedRegistryRolesNotSeparated(admin, registrar);
        }
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(PAUSER_ROLE, pauser);
        _grantRole(REGISTRAR_ROLE, registrar);
        _nextTokenId = firstTokenId == 0 ? 1 : firstTokenId;
    }

    // ------------------------------------------------------------------ anchoring

    /**
     * @notice Appends a batch root and, optionally, tokenizes `tokenCount` new parcels.
     * @param expectedBatchId the id the caller believes this batch gets; guards against resent and
     *        racing transactions (the database numbers batches the same way).
     * @param root standard-v1 root over the batch's record commitments (leafEncoding ["bytes32"]).
     * @param recordCount number of leaves under `root`.
     * @param parcelRoot standard-v1 root over (tokenId, parcelKey) of the new tokens, or 0 when none.
     * @param tokenCount number of parcel tokens to mint, ids `nextTokenId()` onwards.
     * @return batchId the id of the new batch.
     *
     * Requirements:
     * - caller has REGISTRAR_ROLE; the contract is not paused;
     * - `expectedBatchId` equals `batchCount()`;
     * - `root` is non-zero and not anchored before; `recordCount` is positive;
     * - `parcelRoot` is non-zero exactly when `tokenCount` is positive.
     *
     * Emits a {BatchAnchored} event and, when tokens are minted, one {ConsecutiveTransfer} event.
     */
    function anchorBatch(
        uint256 expectedBatchId,
        bytes32 root,
        uint64 recordCount,
        bytes32 parcelRoot,
        uint64 tokenCount
    ) external onlyRole(REGISTRAR_ROLE) whenNotPaused returns (uint256 batchId) {
        batchId = _batches.length;
        if (expectedBatchId != batchId) revert DeedRegistryUnexpectedBatchId(expectedBatchId, batchId);
        if (root == bytes32(0) || recordCount == 0) revert DeedRegistryEmptyBatch();
        uint256 existing = _batchOfRoot[root];
        if (existing != 0) revert DeedRegistryRootAlreadyAnchored(root, existing - 1);
        if ((tokenCount == 0) != (parcelRoot == bytes32(0))) revert DeedRegistryInvalidParcelRoot();

        uint64 firstTokenId = tokenCount == 0 ? 0 : _nextTokenId;
        bytes32 previous = batchId == 0 ? bytes32(0) : _batches[batchId - 1].chainHash;
        bytes32 chainHash =
            keccak256(abi.encode(previous, batchId, root, recordCount, parcelRoot, firstTokenId, tokenCount));
        _batches.push(
            Batch({
                root: root,
                parcelRoot: parcelRoot,
                chainHash: chainHash,
                recordCount: recordCount,
                firstTokenId: firstTokenId,
                tokenCount: tokenCount,
                anchoredAtBlock: uint64(block.number)
            })
        );
        _batchOfRoot[root] = batchId + 1;
        emit BatchAnchored(batchId, root, chainHash, recordCount, parcelRoot, firstTokenId, tokenCount);

        if (tokenCount > 0) {
            _nextTokenId = firstTokenId + tokenCount;
            _increaseBalance(address(this), tokenCount);
            emit ConsecutiveTransfer(firstTokenId, firstTokenId + tokenCount - 1, address(0), address(this));
        }
    }

    /**
     * @notice Revokes records of an anchored batch (they were superseded). Records already revoked
     * are skipped, so a retried call changes nothing.
     * @param reason a short code chosen by the registry, e.g. "ROLLBACK".
     *
     * Requirements: caller has REGISTRAR_ROLE; the contract is not paused; the batch exists.
     *
     * Emits a {RecordRevoked} event per newly revoked leaf.
     */
    function revokeRecords(uint256 batchId, bytes32[] calldata leaves, bytes32 reason)
        external
        onlyRole(REGISTRAR_ROLE)
        whenNotPaused
    {
        if (batchId >= _batches.length) revert DeedRegistryUnknownBatch(batchId);
        mapping(bytes32 => uint256) storage revoked = _revokedAt[batchId];
        for (uint256 i = 0; i < leaves.length; ++i) {
            if (revoked[leaves[i]] == 0) {
                revoked[leaves[i]] = block.number;
                emit RecordRevoked(batchId, leaves[i], reason);
            }
        }
    }

    /**
     * @notice Moves a parcel token out of (or back into) registry custody.
     *
     * Requirements: caller has REGISTRAR_ROLE; the contract is not paused; `to` is not zero.
     *
     * Emits a {Transfer} event.
     */
    function registrarTransfer(uint256 tokenId, address to) external onlyRole(REGISTRAR_ROLE) whenNotPaused {
        _requireOwned(tokenId);
        _update(to, tokenId, address(0));
    }

    /// @notice Stops anchoring, revocation and token moves. Requirements: caller has PAUSER_ROLE.
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @notice Resumes state changes. Requirements: caller has PAUSER_ROLE.
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    // ------------------------------------------------------------------ views

    /// @notice Number of anchored batches; the next batch gets this id.
    function batchCount() external view returns (uint256) {
        return _batches.length;
    }

    /// @notice The anchored batch `batchId`. Requirements: the batch exists.
    function getBatch(uint256 batchId) external view returns (Batch memory) {
        if (batchId >= _batches.length) revert DeedRegistryUnknownBatch(batchId);
        return _batches[batchId];
    }

    /// @notice The hash that chains every anchor to the one before it (zero before the first).
    function chainHead() external view returns (bytes32) {
        return _batches.length == 0 ? bytes32(0) : _batches[_batches.length - 1].chainHash;
    }

    /// @notice Whether `root` is anchored, and as which batch.
    function batchOfRoot(bytes32 root) external view returns (bool anchored, uint256 batchId) {
        uint256 idPlusOne = _batchOfRoot[root];
        return idPlusOne == 0 ? (false, 0) : (true, idPlusOne - 1);
    }

    /// @notice Block at which `leaf` of batch `batchId` was revoked, or 0 when it stands.
    function revokedAt(uint256 batchId, bytes32 leaf) external view returns (uint256) {
        return _revokedAt[batchId][leaf];
    }

    /// @notice Id the next minted parcel token gets (token ids start at 1).
    function nextTokenId() external view returns (uint256) {
        return _nextTokenId;
    }

    /**
     * @notice Whether the record with commitment `commitment` is in anchored batch `batchId` by
     * `proof` and has not been revoked. The standard-v1 leaf, `keccak256(keccak256(abi.encode(commitment)))`,
     * is computed here, so only a real record verifies: the root or an inner node handed in as a
     * commitment hashes to a leaf that is not in the tree. Uses OpenZeppelin's `MerkleProof`, so it
     * accepts exactly the proofs of OpenZeppelin's merkle-tree library.
     */
    function verifyCommitment(uint256 batchId, bytes32[] calldata proof, bytes32 commitment)
        external
        view
        returns (bool)
    {
        if (batchId >= _batches.length) return false;
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(commitment))));
        return _revokedAt[batchId][leaf] == 0 && MerkleProof.verifyCalldata(proof, _batches[batchId].root, leaf);
    }

    /// @notice Whether `tokenId` stands for parcel `parcelKey`, by `proof` against the parcel root of batch `batchId`.
    function verifyParcelToken(uint256 batchId, bytes32[] calldata proof, uint256 tokenId, string calldata parcelKey)
        external
        view
        returns (bool)
    {
        if (batchId >= _batches.length) return false;
        Batch storage batch = _batches[batchId];
        if (tokenId < batch.firstTokenId || tokenId >= uint256(batch.firstTokenId) + batch.tokenCount) return false;
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(tokenId, parcelKey))));
        return MerkleProof.verifyCalldata(proof, batch.parcelRoot, leaf);
    }

    /// @notice ERC-5192: every parcel token is locked; only the registrar moves it.
    function locked(uint256 tokenId) external view returns (bool) {
        _requireOwned(tokenId);
        return true;
    }

    /// @inheritdoc ERC721
    function supportsInterface(bytes4 interfaceId) public view override(ERC721, AccessControl) returns (bool) {
        return interfaceId == type(IERC5192).interfaceId || ERC721.supportsInterface(interfaceId)
            || AccessControl.supportsInterface(interfaceId);
    }

    // ------------------------------------------------------------------ ERC-721 hooks

    /// @dev Tokens minted by `anchorBatch` and never moved are owned by the registry itself.
    function _ownerOf(uint256 tokenId) internal view override returns (address) {
        address owner = super._ownerOf(tokenId);
        if (owner == address(0) && tokenId != 0 && tokenId < _nextTokenId) return address(this);
        return owner;
    }

    /// @dev Transfer rules: holders cannot move tokens (ERC-5192 lock); nobody burns; nothing moves while paused.
    /// Registrar moves reach here with `auth == address(0)`.
    function _update(address to, uint256 tokenId, address auth) internal override whenNotPaused returns (address) {
        if (auth != address(0)) revert DeedRegistryTokenLocked(tokenId);
        if (to == address(0)) revert DeedRegistryTokenNotBurnable(tokenId);
        return super._update(to, tokenId, auth);
    }
}
